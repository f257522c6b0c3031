/* respond.c - response heads and the responses built in C. */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "worker/respond.h"
#include "worker/util.h"

const char *fa_respond_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 418: return "I'm a teapot";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default:  return status < 200 ? "Informational" : status < 300 ? "OK" : status < 400 ? "Redirect"
                   : status < 500 ? "Client Error" : "Server Error";
    }
}

void fa_respond_date(struct fa_worker *w)
{
    time_t now = time(NULL);
    if (now == w->date_at)
        return;
    struct tm tm;
    gmtime_r(&now, &tm);
    w->date_len = strftime(w->date, sizeof w->date, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
    w->date_at = now;
}

void fa_resp_append(struct fa_resp *r, const void *data, size_t n)
{
    if (n == 0)
        return;
    if (r->hlen + n > r->hcap) {
        size_t cap = r->hcap ? r->hcap : 256;
        while (cap < r->hlen + n)
            cap *= 2;
        r->hbuf = fa_xrealloc(r->hbuf, cap);
        r->hcap = cap;
    }
    memcpy(r->hbuf + r->hlen, data, n);
    r->hlen += n;
}

/* Decimal digits of v into the end of buf; returns where they start. */
static char *respond__utoa(char *end, uint64_t v)
{
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return end;
}

/* Every response starts here: no printf on the per-request path. */
void fa_respond_head(struct fa_worker *w, struct fa_resp *r, int status, size_t content_length)
{
    char line[160], num[24];
    r->status = (uint16_t)status;
    r->hbody = 0;
    if (status < 100 || status > 999)
        status = 500;
    const char *reason = fa_respond_reason(status);
    size_t rl = strlen(reason);
    memcpy(line, "HTTP/1.1 ", 9);
    line[9] = (char)('0' + status / 100);
    line[10] = (char)('0' + status / 10 % 10);
    line[11] = (char)('0' + status % 10);
    line[12] = ' ';
    memcpy(line + 13, reason, rl);
    memcpy(line + 13 + rl, "\r\nServer: fasterapi\r\n", 21);
    fa_resp_append(r, line, 13 + rl + 21);
    fa_respond_date(w);
    fa_resp_append(r, w->date, w->date_len);
    /* 1xx, 204 and 304 carry no Content-Length (RFC 9110 8.6). */
    if (status >= 200 && status != 204 && status != 304 && content_length != FA_RESPOND_NO_LENGTH) {
        char *d = respond__utoa(num + sizeof num, content_length);
        fa_resp_append(r, "Content-Length: ", 16);
        fa_resp_append(r, d, (size_t)(num + sizeof num - d));
        fa_resp_append(r, "\r\n", 2);
    }
    if (!r->keep_alive)
        fa_resp_append(r, "Connection: close\r\n", 19);
}

void fa_respond_simple(struct fa_worker *w, struct fa_resp *r, int status,
                       const char *content_type, const char *body, size_t body_len,
                       const char *extra_headers)
{
    r->hlen = 0;
    fa_respond_head(w, r, status, body_len);
    if (content_type) {
        fa_resp_append(r, "Content-Type: ", 14);
        fa_resp_append(r, content_type, strlen(content_type));
        fa_resp_append(r, "\r\n", 2);
    }
    if (extra_headers)
        fa_resp_append(r, extra_headers, strlen(extra_headers));
    fa_resp_append(r, "\r\n", 2);
    if (!r->head_only && body_len && status >= 200 && status != 204 && status != 304) {
        fa_resp_append(r, body, body_len);
        r->hbody = body_len;
    }
    r->niov = 0;
    if (r->file) {
        close(r->file_fd);
        r->file = false;
    }
    r->total = r->hlen;
    r->sent = 0;
    r->state = FA_RESP_READY;
}

void fa_respond_error(struct fa_worker *w, struct fa_resp *r, int status, const char *extra_headers)
{
    char body[160];
    int n = snprintf(body, sizeof body, "{\"detail\":\"%s\"}", fa_respond_reason(status));
    fa_respond_simple(w, r, status, "application/json", body, (size_t)n, extra_headers);
}

bool fa_respond_token_ok(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              (c && strchr("!#$%&'*+-.^_`|~", c))))
            return false;
    }
    return true;
}

bool fa_respond_value_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
            return false;
    return true;
}

bool fa_respond_managed_header(const char *name, size_t n)
{
    static const char *const names[] = {"content-length", "transfer-encoding", "connection",
                                        "date", "server", "keep-alive"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strlen(names[i]) == n && strncasecmp(names[i], name, n) == 0)
            return true;
    return false;
}
