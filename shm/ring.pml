/* ring.pml - Spin model of the request/response protocol between one HTTP
 * worker slot, two Python worker slots and the master: the rings, the
 * doorbells, the chunks that carry each message, and what every process does
 * when another one dies. Started from ../shared/spec/ring.pml (one Python
 * slot); extended to two Python slots, HTTP worker crashes and chunk states.
 *
 * Processes (each step names the C function it stands for):
 *   Http(inc)        worker/dispatch.c, worker/worker.c: one incarnation of
 *                    HTTP slot 0. The master may SIGKILL it at ANY step and
 *                    starts the next incarnation.
 *   Python(p, gen)   pyworker/serve.c: one incarnation of Python slot p,
 *                    killable at ANY step (SIGKILL, OOM, segfault: "unless").
 *   Master()         master/supervise.c: master__reap, master__py_died,
 *                    master__restarts; kills at most PKILLS Python workers
 *                    and HKILLS HTTP workers, in any order.
 *   Leaks()          no code: once everything is idle, checks the chunks.
 *
 * The model is the protocol as it should be. Where worker/dispatch.c or
 * master/supervise.c differ today, a variant below reproduces the code and
 * fails (FAIL_BY_CURRENT_GEN, RECLAIM_BY_CURRENT_GEN, SPACE_WAKE_BY_FLAG,
 * TOKEN_SALT, NO_PY_WAKE_ON_HTTP_DEATH; tests/spec/README.md has the trails
 * and the fixes).
 *
 * Spin's interleaving is sequentially consistent: the C11 memory orders
 * (release/acquire on ring indices, the seq_cst fences of the doorbell and
 * want_space handshakes) are argued in shm/README.md and layout.h; what this
 * model checks is the protocol above them.
 *
 * Checks:
 *   - a request is executed at most once, by a live incarnation of the slot
 *     it was sent to (assert in Python), also when a request that a dead
 *     worker never took is sent to another one (dispatch__requeue);
 *   - a response is delivered to the request it answers and only once
 *     (assert in Http);
 *   - no request is failed (502) while its response is published and
 *     undelivered: only requests whose worker died before answering fail
 *     (assert in Http's death handling);
 *   - every request sent by a live HTTP incarnation ends exactly once, as
 *     RESPONDED or FAILED (assert when Http is idle at the end);
 *   - a receiver reads a chunk only while it is SENT to it (asserts), so no
 *     chunk is reclaimed or reused under a reader;
 *   - no chunk leaks: once everything is idle every chunk is FREE, except
 *     the ones the known leaks below leave behind (Leaks; -DSTRICT_LEAKS
 *     counts those too);
 *   - no lost wakeup and no deadlock (Spin's "invalid end state": a process
 *     blocked anywhere but at an end label).
 *
 * Run:  tests/spec/run-spin, which checks four small configurations
 *       (-DNREQ, -DPKILLS, -DHKILLS) and every variant; by hand:
 *       spin -a -DNREQ=2 -DPKILLS=1 -DHKILLS=0 ring.pml &&
 *       gcc -O2 -DSAFETY -DCOLLAPSE -o pan pan.c && ./pan -m2000000
 *
 * Bug variants (each must fail; tests/spec/run-spin checks that they do):
 *   -DNO_SPACE_WAKE       the HTTP worker never answers want_space on a full
 *                         response ring: the Python worker sleeps forever
 *                         (serve.c would wake after its 1 s poll: a stall)
 *   -DCOND_DEATH_WAKE     the master wakes the HTTP worker only through the
 *                         sleeping flag, which may already be consumed
 *   -DNO_GEN_CHECK        a new Python incarnation runs requests sent to the
 *                         dead one (the HTTP worker has failed them already)
 *   -DFAIL_BY_CURRENT_GEN the HTTP worker fails requests by the generation
 *                         it reads after draining, not by a snapshot taken
 *                         before: a response published in between is lost.
 *                         worker/dispatch.c dispatch__deaths does this today
 *                         (it reads the slot generation per pending entry,
 *                         after fa_dispatch_poll): see tests/spec/README.md
 *   -DRECLAIM_BY_CURRENT_GEN  dispatch__reclaim_py frees the chunks of a
 *                         Python arena SENT to us by a generation older than
 *                         the one it reads after draining: a response that a
 *                         worker published after the drain and then died is
 *                         freed under its descriptor (worker/dispatch.c does
 *                         this today; tests/spec/README.md)
 *   -DTOKEN_SALT          response tokens without the HTTP incarnation (the
 *                         code's pid salt, when two salts collide): a new
 *                         HTTP incarnation takes a response meant for the
 *                         dead one's request as the answer to its own
 *   -DSPACE_WAKE_BY_FLAG, -DNO_PY_WAKE_ON_HTTP_DEATH: see space_wake and
 *                         Master below (the code as it is today)
 *   -DREQUEUE_TAKEN       dispatch__requeue sends again every request of a
 *                         dead generation, also one the dead worker had
 *                         taken (popped): it runs twice
 *   -DNO_STAMP_CLEANUP    a restarted HTTP worker does not take back the
 *                         envelopes its predecessor marked SENT and never
 *                         published (killed between fa_msg_end and
 *                         fa_ring_commit): they leak
 *   -DSTRICT_LEAKS        no leak is tolerated: fails on the one leak the
 *                         model still tolerates, (c): an HTTP worker killed
 *                         while it holds responses (popped, not yet written
 *                         and freed) leaves their chunks SENT in the Python
 *                         arenas. The code takes them back with a two-phase
 *                         sweep in the successor (fa_dispatch_sweep), which
 *                         this model does not have. (An envelope marked SENT
 *                         and never published, (b), is taken back by the
 *                         restarted worker's stamp check, modelled.)
 *                         (A Python worker's own leftovers are reclaimed:
 *                         serve__init frees WRITING chunks, and the HTTP
 *                         workers free unpublished SENT ones after a death,
 *                         dispatch__reclaim_py.)
 */

#define NP       2      /* Python slots (the code below is written for 2) */
#define N        1      /* ring capacity (every ring) */
#ifndef NREQ
#define NREQ     3      /* requests the clients send */
#endif
#ifndef PKILLS
#define PKILLS   2      /* Python workers the master may kill */
#endif
#ifndef HKILLS
#define HKILLS   1      /* HTTP workers the master may kill */
#endif

/* request states */
#define NEW      0
#define PENDING  1      /* sent to a Python worker, in the pending table */
#define DONE     2      /* its response was written to the client */
#define FAILED   3      /* answered 502 */
#define GONE     4      /* its HTTP worker died with it (the client saw a reset) */
/* chunk states (layout.h: FA_CHUNK_*) */
#define FREE     0
#define WRITING  1
#define SENT     2

#define RI(p, i) ((p) * N + (i) % N)

/* Request rings HTTP -> Python p and response rings Python p -> HTTP
 * (fa_seg_req_ring / fa_seg_resp_ring): descriptor = (id, gen, token). */
byte rq_id[NP * N]; byte rq_gen[NP * N]; byte rq_tok[NP * N];
byte rq_head[NP]; byte rq_tail[NP];
byte rs_id[NP * N]; byte rs_gen[NP * N]; byte rs_tok[NP * N];
byte rs_head[NP]; byte rs_tail[NP];
bit  rs_want[NP];                   /* fa_ring_sh.want_space of the response ring */

/* fa_slot_sh of the Python slots and of HTTP slot 0 */
byte gen[NP] = 1;                   /* slot generation, bumped by master__py_died */
bit  p_ready[NP];                   /* state == FA_SLOT_READY */
bit  p_sleeping[NP]; bit p_in_kernel[NP];   /* doorbell flag / blocked in poll() */
bit  p_efd[NP];                     /* the slot's eventfd counter is not 0 */
bit  p_wspace[NP];                  /* blocked in serve__push, waiting for ring space */
bit  h_sleeping; bit h_in_kernel; bit h_efd;
byte death_seq;                     /* HTTP slot's death_seq */

/* the master's view */
bit  kill_p[NP]; bit p_dead[NP]; bit kill_h; bit h_dead;
byte hinc = 1;                      /* HTTP incarnation (model bookkeeping) */
bit  master_done;

/* requests */
byte state[NREQ]; byte sent_slot[NREQ]; byte sent_gen[NREQ]; byte sent_inc[NREQ];
byte tok[NREQ]; byte processed[NREQ];
byte nsent;                         /* requests handed to an HTTP worker so far */
/* the request envelope's chunk (HTTP arena) and the response's chunk (the
 * Python slot's arena), one each per request */
byte qc[NREQ]; byte qgen[NREQ]; bit q_pub[NREQ]; bit q_taken[NREQ];
byte q_idx[NREQ];                   /* the request ring index it was last reserved at: the
                                       stamp fa_msg_end writes into its chunk (layout.h) */
bit  again[NREQ]; byte nagain;      /* sent to a worker that died without taking it:
                                       waiting to be sent again (dispatch__requeue) */
byte sc[NREQ]; byte sgen[NREQ]; bit s_pub[NREQ]; byte s_holder[NREQ]; bit s_orphan[NREQ];

/* Producer side of the sleeping-flag protocol (fa_doorbell_ring): exchange
 * the flag 1 -> 0 and write the eventfd only if it was 1. A crash may land
 * between the exchange and the write. */
inline wake_p(p) {
  atomic { if :: p_sleeping[p] -> p_sleeping[p] = 0; won = 1 :: else -> won = 0 fi };
  if :: won -> atomic { p_efd[p] = 1; p_in_kernel[p] = 0 } :: else -> skip fi
}
inline wake_h() {
  atomic { if :: h_sleeping -> h_sleeping = 0; won = 1 :: else -> won = 0 fi };
  if :: won -> atomic { h_efd = 1; h_in_kernel = 0 } :: else -> skip fi
}
/* fa_doorbell_ring_force: write the eventfd whatever the flag says. The
 * counter stays up until the owner drains it, so a write before the owner
 * blocks is not lost. */
inline force_p(p) { atomic { p_efd[p] = 1; p_in_kernel[p] = 0 } }
inline force_h()  { atomic { h_efd = 1; h_in_kernel = 0 } }
/* The owner's wait: poll() returns at once if the counter is up, else
 * blocks; then the counter is drained and the flag cleared
 * (fa_doorbell_wait + fa_doorbell_sleep_cancel). */
inline block_p(p) {
  atomic { if :: p_efd[p] -> p_efd[p] = 0 :: else -> p_in_kernel[p] = 1 fi }
}

/* ------------------------------------------------------------------------ */
/* Python worker: pyworker/serve.c                                            */
/* ------------------------------------------------------------------------ */

proctype Python(byte p; byte mygen) {
  byte h, id, g, t; bit won;
  {
    atomic {                                       /* serve__init: a predecessor's */
      for (t : 0 .. NREQ - 1) {                    /* WRITING chunks go back */
        if :: sent_slot[t] == p && sc[t] == WRITING -> sc[t] = FREE
           :: else -> skip fi
      }
      t = 0
    };
    p_ready[p] = 1;                                /* main.c: slot READY */
    do
    :: rq_head[p] != rq_tail[p] ->                 /* serve__round: fa_ring_pop */
         atomic {
           h = rq_head[p]; id = rq_id[RI(p, h)]; g = rq_gen[RI(p, h)]; t = rq_tok[RI(p, h)];
           rq_head[p] = h + 1; h = 0;              /* (release head) */
           q_pub[id] = 0; q_taken[id] = 1;
#ifndef NO_GEN_CHECK
           if :: g != mygen -> goto next           /* serve__one: stale, dropped; its */
              :: else -> skip fi;                  /* sender reclaims the chunks */
#endif
           /* serve__one: fa_msg_iov - the chain is SENT to this incarnation */
           assert(qc[id] == SENT && qgen[id] == mygen);
           assert(processed[id] == 0);             /* serve__call: never executed twice */
           processed[id]++;
           g = 0
         }
         qc[id] = FREE;                            /* serve__call: fa_msg_free (request) */
         sc[id] = WRITING;                         /* serve__send: fa_msg_begin/write */
         atomic { sgen[id] = mygen; sc[id] = SENT }   /* serve__send: fa_msg_end */
         do                                        /* serve__push: a free slot, or wait */
         :: rs_tail[p] - rs_head[p] < N -> break   /* fa_ring_reserve */
         :: else ->
              rs_want[p] = 1;                      /* fa_ring_want_space: set, fence, */
              if                                   /* re-check */
              :: rs_tail[p] - rs_head[p] < N -> skip
              :: else ->
                   p_sleeping[p] = 1;              /* fa_doorbell_sleep_begin */
                   if
                   :: rs_tail[p] - rs_head[p] < N -> p_sleeping[p] = 0   /* reserve again */
                   :: else ->                      /* serve__doorbell_wait */
                        atomic { block_p(p); p_wspace[p] = p_in_kernel[p] };
                        (p_in_kernel[p] == 0);     /* no end label: waiting for ever = bug */
                        atomic { p_efd[p] = 0; p_sleeping[p] = 0; p_wspace[p] = 0 }
                   fi
              fi
         od;
         atomic {                                  /* fill the slot; serve__flush: */
           rs_id[RI(p, rs_tail[p])] = id; rs_gen[RI(p, rs_tail[p])] = mygen;   /* commit */
           rs_tok[RI(p, rs_tail[p])] = t;
           rs_tail[p] = rs_tail[p] + 1; s_pub[id] = 1
         };
         wake_h();                                 /* serve__ring_http */
next:    atomic { id = 0; g = 0; t = 0 }
    :: else ->                                     /* fa_serve_run: nothing queued */
         p_sleeping[p] = 1;                        /* fa_doorbell_sleep_begin */
         if
         :: rq_head[p] != rq_tail[p] -> p_sleeping[p] = 0   /* serve__any_work */
         :: else ->
              block_p(p);
end_idle:     (p_in_kernel[p] == 0);               /* serve__doorbell_wait */
              atomic { p_efd[p] = 0; p_sleeping[p] = 0 }
         fi
    od
  } unless {
    kill_p[p] ->                                   /* SIGKILL at any step */
      atomic { p_wspace[p] = 0; p_dead[p] = 1 }
  }
}

/* ------------------------------------------------------------------------ */
/* HTTP worker: worker/dispatch.c, worker/worker.c                           */
/* ------------------------------------------------------------------------ */

/* dispatch__response: one descriptor popped from response ring p. The token
 * names a pending entry; seq, slot and generation must match (else dropped
 * and freed). Frees the chunks once "written" (fa_resp_free). */
inline take_response(p) {
  atomic {
    id = rs_id[RI(p, rs_head[p])]; g = rs_gen[RI(p, rs_head[p])]; t = rs_tok[RI(p, rs_head[p])];
    rs_head[p] = rs_head[p] + 1; s_pub[id] = 0; s_holder[id] = inc;   /* fa_ring_pop */
    assert(sc[id] == SENT);                        /* fa_msg_iov: SENT to us */
    i = 0; found = 0;
    do                                             /* w->pending[token & 0xffff] */
    :: i < NREQ ->
         if :: state[i] == PENDING && sent_inc[i] == inc && tok[i] == t &&
               sent_slot[i] == p && sent_gen[i] == g -> found = 1; break
            :: else -> i++ fi
    :: else -> break
    od;
    if
    :: found ->
         assert(i == id);                          /* the answer to THIS request */
         state[i] = DONE                           /* dispatch__answer */
    :: else -> skip                                /* "dropping a response ..." */
    fi;
    i = 0; found = 0; g = 0; t = 0
  };
  atomic { sc[id] = FREE; s_holder[id] = 0; id = 0 } /* written: fa_resp_free */
}

/* The answer to want_space. The flag is taken after popping, but the
 * Python worker may have filled the ring again, set want_space and not yet
 * its sleeping flag: a wake through the sleeping flag finds it 0 and writes
 * nothing, and the Python worker then sleeps on a full ring whose flag is
 * gone. Writing the eventfd unconditionally cannot be lost.
 * worker/dispatch.c fa_dispatch_poll uses fa_doorbell_ring (the flag) today:
 * -DSPACE_WAKE_BY_FLAG, a stall of up to 1 s (serve.c's poll timeout). */
inline space_wake(p) {
#ifdef SPACE_WAKE_BY_FLAG
  wake_p(p)
#else
  force_p(p)
#endif
}

proctype Http(byte inc) {
  byte i, id, g, t, p, dg0, dg1, seen, nreq; bit won, found;
  {
    /* dispatch__restart_cleanup: take back the envelopes the previous
     * incarnation was writing, or had marked SENT and never published (the
     * stamp, their ring index, is at or past the ring's tail), discard the
     * answers addressed to it. */
    atomic {
      for (i : 0 .. NREQ - 1) {
        if :: qc[i] == WRITING -> qc[i] = FREE
#ifndef NO_STAMP_CLEANUP
           :: qc[i] == SENT && q_idx[i] >= rq_tail[sent_slot[i]] -> qc[i] = FREE
#endif
           :: else -> skip fi
      }
      i = 0
    }
    for (p : 0 .. NP - 1) {
      do
      :: rs_head[p] != rs_tail[p] ->
           atomic {
             id = rs_id[RI(p, rs_head[p])];
             rs_head[p] = rs_head[p] + 1; s_pub[id] = 0;
             assert(sc[id] == SENT);
             sc[id] = FREE; id = 0                 /* fa_msg_iov, fa_msg_free */
           }
      :: else -> break
      od
    }
    p = 0;
    /* seen_death starts at 0 (memset in fa_worker_run): a death before this
     * incarnation is handled at its first poll, which reclaims. */
    do
    :: death_seq != seen ->                        /* fa_dispatch_poll: death_seq moved */
         atomic {
           seen = death_seq;                       /* dispatch__deaths */
           dg0 = gen[0]; dg1 = gen[1]              /* snapshot BEFORE draining (DESIGN.md) */
         };
         for (p : 0 .. NP - 1) {                   /* 1. drain what the dead fully published */
           do
           :: rs_head[p] != rs_tail[p] -> take_response(p)
           :: else -> break
           od
         }
         p = 0;
         atomic {
         for (i : 0 .. NREQ - 1) {                 /* 2. what was sent to a dead generation: */
#ifdef FAIL_BY_CURRENT_GEN
           if :: state[i] == PENDING && sent_inc[i] == inc && sent_gen[i] != gen[sent_slot[i]] ->
#else
           if :: state[i] == PENDING && sent_inc[i] == inc &&
                 sent_gen[i] < (sent_slot[i] == 0 -> dg0 : dg1) ->
#endif
                   if
#ifdef REQUEUE_TAKEN
                   :: true ->                      /* BUG: taken or not */
#else
                   :: q_idx[i] >= rq_head[sent_slot[i]] ->   /* never taken: past head */
#endif
                        state[i] = NEW; again[i] = 1; nagain++;   /* dispatch__requeue */
                        qc[i] = WRITING            /* fa_msg_unsend */
                   :: else ->
                        assert(!s_pub[i]);         /* its answer is not sitting in a ring */
                        state[i] = FAILED          /* fa_respond_error(502) */
                   fi
              :: else -> skip fi
         }
         i = 0
         };
         atomic {
         for (i : 0 .. NREQ - 1) {                 /* 3. dispatch__reclaim: SENT to a dead gen */
           if :: qc[i] == SENT && qgen[i] != gen[sent_slot[i]] -> qc[i] = FREE
              :: else -> skip fi
         }
         i = 0
         };
         atomic {
         for (i : 0 .. NREQ - 1) {                 /* 4. dispatch__reclaim_py: chunks SENT to us */
#ifdef RECLAIM_BY_CURRENT_GEN                      /* by a dead generation, not held by us */
           if :: sc[i] == SENT && s_holder[i] != inc && sgen[i] != gen[sent_slot[i]] ->
#else
           if :: sc[i] == SENT && s_holder[i] != inc &&
                 sgen[i] < (sent_slot[i] == 0 -> dg0 : dg1) ->
#endif
                   sc[i] = FREE
              :: else -> skip fi
         }
         i = 0; dg0 = 0; dg1 = 0
         }
    :: rs_head[0] != rs_tail[0] -> take_response(0)   /* fa_dispatch_poll */
    :: rs_head[1] != rs_tail[1] -> take_response(1)
#ifndef NO_SPACE_WAKE
    :: rs_want[0] -> rs_want[0] = 0; space_wake(0) /* fa_ring_space_wanted -> doorbell */
    :: rs_want[1] -> rs_want[1] = 0; space_wake(1)
#endif
    :: (nsent < NREQ || nagain > 0) && ((p_ready[0] && rq_tail[0] - rq_head[0] < N) ||
                        (p_ready[1] && rq_tail[1] - rq_head[1] < N)) ->
         /* a request arrives (conn__on_head), or one to send again, and a
          * READY slot has room (dispatch__choose, fa_ring_reserve); when
          * none has, it waits in the backlog for the 2 ms retry timer (see
          * "else") */
         atomic {
           if
           :: nagain > 0 ->                        /* fa_dispatch_end again (backlog) */
                id = 0;
                do :: again[id] -> break :: else -> id++ od;
                again[id] = 0; nagain--
           :: else ->
                id = nsent; nsent++; sent_inc[id] = inc; qc[id] = WRITING   /* fa_dispatch_begin */
           fi
         };
         if
         :: p_ready[0] && rq_tail[0] - rq_head[0] < N -> p = 0
         :: p_ready[1] && rq_tail[1] - rq_head[1] < N -> p = 1
         :: else -> p = (p_ready[0] -> 0 : 1)      /* it changed meanwhile: the ring */
         fi;                                       /* check below is then the backlog's */
         (rq_tail[p] - rq_head[p] < N);
         atomic {
           g = gen[p];                             /* generation read once */
#ifdef TOKEN_SALT
           t = nreq;                               /* idx | seq << 16, pid salt collided */
#else
           t = inc * NREQ + nreq;                  /* token carries the HTTP incarnation */
#endif
           nreq++;
           tok[id] = t; sent_slot[id] = p; sent_gen[id] = g; sent_inc[id] = inc;
           state[id] = PENDING;                    /* dispatch__pending_alloc */
           q_idx[id] = rq_tail[p];                 /* the stamp: the slot reserved */
           qgen[id] = g; qc[id] = SENT             /* fa_msg_end: SENT(n_http + p, g) */
         };
         atomic {                                  /* fill the slot; fa_dispatch_flush: */
           rq_id[RI(p, rq_tail[p])] = id; rq_gen[RI(p, rq_tail[p])] = g;   /* commit */
           rq_tok[RI(p, rq_tail[p])] = t;
           rq_tail[p] = rq_tail[p] + 1; q_pub[id] = 1;
           id = 0; g = 0; t = 0
         };
         wake_p(p);                                /* fa_doorbell_ring */
         p = 0
    :: else ->
         if
         :: nsent < NREQ || nagain > 0 -> skip     /* backlog: ev_retry fires in 2 ms */
         :: else ->                                /* worker.c: the loop goes to sleep */
         h_sleeping = 1;                           /* fa_doorbell_sleep_begin */
         if
         :: rs_head[0] != rs_tail[0] || rs_head[1] != rs_tail[1] || death_seq != seen ->
              h_sleeping = 0                       /* fa_dispatch_pending_input */
         :: else ->
              atomic { if :: h_efd -> h_efd = 0 :: else -> h_in_kernel = 1 fi };
end_idle:     (h_in_kernel == 0);                  /* event_base_loop(EVLOOP_ONCE) */
              atomic { h_efd = 0; h_sleeping = 0 } /* worker__doorbell_cb, sleep_cancel */
         fi
         fi
    od
  } unless {
    kill_h ->                                      /* SIGKILL at any step */
      atomic {
        h_dead = 1;
        for (i : 0 .. NREQ - 1) {
          /* a request waiting to be sent again dies with its client */
          if :: again[i] -> again[i] = 0; nagain--
             :: else -> skip fi;
          /* known leak (c): response chunks this process held */
          if :: s_holder[i] == inc && sc[i] == SENT -> s_orphan[i] = 1
             :: else -> skip fi;
          /* its clients see the connection reset */
          if :: sent_inc[i] == inc && (state[i] == PENDING || state[i] == NEW) -> state[i] = GONE
             :: else -> skip fi
        }
      }
  }
}

/* ------------------------------------------------------------------------ */
/* Master: master/supervise.c                                                 */
/* ------------------------------------------------------------------------ */

proctype Master() {
  byte p, pk, hk; bit won;
  do
  :: pk < PKILLS ->
       if :: p = 0 :: p = 1 fi;
       kill_p[p] = 1; (p_dead[p]);                 /* SIGKILL; master__reap: waitpid */
       atomic { kill_p[p] = 0; p_dead[p] = 0; pk++ };
       p_ready[p] = 0;                             /* master__py_died: state DEAD */
       gen[p]++;                                   /* bump the generation */
       p_in_kernel[p] = 0;                         /* the dead task waits on nothing */
       death_seq++;                                /* every HTTP slot's death_seq */
#ifdef COND_DEATH_WAKE
       wake_h();                                   /* BUG: the flag may be consumed already */
#else
       force_h();                                  /* fa_doorbell_ring_force */
#endif
       run Python(p, gen[p])                       /* master__restarts: fa_master_spawn_py */
  :: hk < HKILLS ->
       kill_h = 1; (h_dead);                       /* master__reap: an HTTP worker died */
       atomic { kill_h = 0; h_dead = 0; hk++ };
       hinc++;                                     /* no generation, no notice */
       h_in_kernel = 0;                            /* the dead task waits on nothing */
#ifndef NO_PY_WAKE_ON_HTTP_DEATH
       /* The dead worker may have taken a Python worker's sleeping flag
        * (fa_doorbell_ring) and died before its write: wake them all.
        * master__reap does not do this today: -DNO_PY_WAKE_ON_HTTP_DEATH,
        * a stall of up to 1 s (serve.c's poll timeout). */
       force_p(0); force_p(1);
#endif
       run Http(hinc)                              /* fa_master_spawn_http */
  :: break
  od;
  master_done = 1
}

/* ------------------------------------------------------------------------ */
/* Once nothing can move any more: every request ended, every chunk FREE.    */
/* ------------------------------------------------------------------------ */

proctype Leaks() {
  byte i;
end_wait:
  atomic {
    master_done && nsent == NREQ && nagain == 0 && h_in_kernel && p_in_kernel[0] && p_in_kernel[1] &&
    rq_head[0] == rq_tail[0] && rq_head[1] == rq_tail[1] &&
    rs_head[0] == rs_tail[0] && rs_head[1] == rs_tail[1] ->
    /* a Python worker asleep in serve__push although its ring is empty:
     * the wakeup for space was lost */
    assert(!p_wspace[0] && !p_wspace[1]);
    for (i : 0 .. NREQ - 1) {
      assert(state[i] == DONE || state[i] == FAILED || state[i] == GONE);
      assert(state[i] != DONE || processed[i] == 1);
#ifdef STRICT_LEAKS
      assert(qc[i] == FREE);
      assert(sc[i] == FREE);
#else
      assert(qc[i] == FREE);
      assert(sc[i] == FREE || s_orphan[i]);
#endif
    }
  }
}

init {
  atomic { run Python(0, 1); run Python(1, 1); run Http(1); run Master(); run Leaks() }
}
