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

export const isTerminal = (job: Pick<Job, "status">): boolean => job.status !== "processing";

type Update = (patch: Partial<Job>) => void;

/** Follows one job until it ends or ``signal`` aborts; ``update`` gets each change. */
export async function followJob(id: string, update: Update, signal: AbortSignal): Promise<void> {
  await slots.acquire(signal);
  try {
    if (await streamJob(id, update, signal)) return;
  } catch (err) {
    if (signal.aborted) return;
    console.warn("job stream failed, polling instead", err);
  } finally {
    slots.release();
  }
  await pollJob(id, update, signal);
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

async function pollJob(id: string, update: Update, signal: AbortSignal): Promise<void> {
  while (!signal.aborted) {
    await new Promise((r) => setTimeout(r, POLL_MS));
    if (signal.aborted) return;
    try {
      const job = await api.job(id, signal);
      update(job);
      if (isTerminal(job)) return;
    } catch (err) {
      if (signal.aborted) return;
      console.warn("job poll failed", err);
    }
  }
}

/** A job that stays current while it is processing. ``onEnd`` runs once when it finishes. */
export function useLiveJob(initial: Job, onEnd?: (job: Job) => void): Job {
  const [job, setJob] = useState<Job>(initial);
  const wasLive = useRef(!isTerminal(initial));
  useEffect(() => {
    setJob((prev) => (prev.jobId !== initial.jobId || isTerminal(initial) ? initial : prev));
  }, [initial]);
  const live = job.jobId === initial.jobId && !isTerminal(job);
  useEffect(() => {
    if (!live) return;
    const controller = new AbortController();
    const update = (patch: Partial<Job>) => setJob((prev) => ({ ...prev, ...patch }));
    followJob(initial.jobId, update, controller.signal).catch(() => undefined);
    return () => controller.abort();
  }, [initial.jobId, live]);
  useEffect(() => {
    if (wasLive.current && isTerminal(job)) onEnd?.(job);
    wasLive.current = !isTerminal(job);
  }, [job.status]);
  return job;
}
