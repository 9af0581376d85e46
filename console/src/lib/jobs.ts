// Live job status: the SSE stream at /v1/jobs/{id}/events, read with fetch so it can carry the
// key. A browser opens at most six HTTP/1.1 connections to one host and each live stream holds
// one for its whole life, so streams share a few slots and the rest of the console still gets
// through. A job waiting for a slot is kept current by its page's list refresh; one whose
// stream broke is polled slowly instead.

import { useEffect, useRef, useState } from "preact/hooks";
import { api, openStream } from "./api";
import { sseEvents } from "./sse";
import type { Job } from "./types";

const MAX_STREAMS = 3;
const POLL_MS = 4000;

class Slots {
  private free = MAX_STREAMS;
  private waiting: (() => void)[] = [];

  tryAcquire(): boolean {
    if (this.free === 0) return false;
    this.free -= 1;
    return true;
  }

  acquire(signal: AbortSignal): Promise<void> {
    if (this.tryAcquire()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const wake = () => {
        signal.removeEventListener("abort", cancel);
        resolve();
      };
      const cancel = () => {
        this.waiting = this.waiting.filter((w) => w !== wake);
        reject(signal.reason);
      };
      this.waiting.push(wake);
      signal.addEventListener("abort", cancel, { once: true });
    });
  }

  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free += 1;
  }
}

const slots = new Slots();

// After a failed status check the next comes sooner; this many failures in a row and the page
// shows the error with a Retry button instead of spinning on.
const RETRY_MS = [1000, 2000];
const GIVE_UP_AFTER = RETRY_MS.length + 1;

export const isTerminal = (job: Pick<Job, "status">): boolean => job.status !== "processing";

/** A job's state as the console shows it. The wire has three (spec §6): a cancelled job reads
 * ``failed`` with code ``canceled``, and a chat stopped by its reader (cancelled, or cut off
 * when the reader left) has ended as the reader asked, not completed. */
export type ShownState = "processing" | "completed" | "failed" | "canceled" | "stopped";

export function shownState(job: Pick<Job, "status" | "code" | "type" | "finishReason">): ShownState {
  const chat = job.type === "chat";
  if (job.status === "failed" && job.code === "canceled") return chat ? "stopped" : "canceled";
  if (job.status === "completed" && chat && job.finishReason === "disconnect") return "stopped";
  return job.status;
}

/** Whether the job's credits came back: a cancelled or failed generation is refunded; a chat
 * that streamed keeps its charge (spec §12: tokens were delivered). */
export const refunded = (job: Pick<Job, "status" | "type">): boolean =>
  job.status === "failed" && job.type !== "chat";

type Update = (patch: Partial<Job>) => void;

/** Follows one job until it ends or ``signal`` aborts; ``update`` gets each change. Rejects
 * with the last error once its status could not be checked several times in a row. */
export async function followJob(id: string, update: Update, signal: AbortSignal): Promise<void> {
  let failures = 0;
  await slots.acquire(signal);
  try {
    if (await streamJob(id, update, signal)) return;
  } catch (err) {
    if (signal.aborted) return;
    console.warn("job stream failed, polling instead", err);
    failures = 1;
  } finally {
    slots.release();
  }
  await pollJob(id, update, signal, failures);
}

async function streamJob(id: string, update: Update, signal: AbortSignal): Promise<boolean> {
  const body = await openStream("GET", `/v1/jobs/${encodeURIComponent(id)}/events`, { signal });
  for await (const event of sseEvents(body)) {
    const data = JSON.parse(event.data) as Partial<Job>;
    if (event.event === "progress") update({ progress: data.progress });
    else if (event.event === "status") {
      update(data);
      if (data.status && data.status !== "processing") return true;
    }
  }
  return false;
}

async function pollJob(id: string, update: Update, signal: AbortSignal, failures: number): Promise<void> {
  while (!signal.aborted) {
    await new Promise((r) => setTimeout(r, failures ? RETRY_MS[failures - 1] : POLL_MS));
    if (signal.aborted) return;
    try {
      const job = await api.job(id, signal);
      failures = 0;
      update(job);
      if (isTerminal(job)) return;
    } catch (err) {
      if (signal.aborted) return;
      failures += 1;
      if (failures >= GIVE_UP_AFTER) throw err;
      console.warn("job poll failed", err);
    }
  }
}

export interface LiveJob {
  job: Job;
  /** Why the job's status could not be checked, after several tries; null while all is well. */
  failure: unknown;
  retry: () => void;
}

/** A job that stays current while it is processing. ``onEnd`` runs once when it finishes. */
export function useLiveJob(initial: Job, onEnd?: (job: Job) => void): LiveJob {
  const [job, setJob] = useState<Job>(initial);
  const [failure, setFailure] = useState<unknown>(null);
  const [attempt, setAttempt] = useState(0);
  const wasLive = useRef(!isTerminal(initial));
  useEffect(() => {
    setJob((prev) => (prev.jobId !== initial.jobId || isTerminal(initial) ? initial : prev));
  }, [initial]);
  const live = job.jobId === initial.jobId && !isTerminal(job);
  useEffect(() => {
    if (!live) return;
    const controller = new AbortController();
    const update = (patch: Partial<Job>) => setJob((prev) => ({ ...prev, ...patch }));
    followJob(initial.jobId, update, controller.signal).catch((err: unknown) => {
      if (!controller.signal.aborted) setFailure(err);
    });
    return () => controller.abort();
  }, [initial.jobId, live, attempt]);
  useEffect(() => {
    if (wasLive.current && isTerminal(job)) onEnd?.(job);
    wasLive.current = !isTerminal(job);
  }, [job.status]);
  const retry = () => {
    setFailure(null);
    setAttempt((n) => n + 1);
  };
  return { job, failure, retry };
}
