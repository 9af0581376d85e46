// The sums and orderings of the admin's Queue & costs page, from the server's own numbers
// (GET /admin/queue, /admin/usage): nothing here is measured in the browser.
import type { ModelCost, ModelQueue } from "./types";

export type Period = "24h" | "7d" | "30d";

export const PERIOD_HOURS: Record<Period, number> = { "24h": 24, "7d": 24 * 7, "30d": 24 * 30 };

const busy = (m: ModelQueue): number => m.queued + m.running;

/** Models with work now first, then those that ended the most jobs in the period. */
export function ordered(rows: ModelQueue[], idleToo: boolean): ModelQueue[] {
  return rows
    .filter((m) => idleToo || busy(m) + m.finished > 0)
    .sort((a, b) => busy(b) - busy(a) || b.finished - a.finished || a.model.localeCompare(b.model));
}

export interface QueueTotals {
  queued: number;
  running: number;
  finished: number;
  failed: number;
}

export function queueTotals(rows: ModelQueue[]): QueueTotals {
  const t: QueueTotals = { queued: 0, running: 0, finished: 0, failed: 0 };
  for (const m of rows) {
    t.queued += m.queued;
    t.running += m.running;
    t.finished += m.finished;
    t.failed += m.failed;
  }
  return t;
}

/** Dollars kept beyond what the providers charged (100 credits are $1). Null when jobs went to
 * providers and none reported a cost: the margin is then unknown, never the whole charge. */
export function margin(row: Pick<ModelCost, "creditsUsd" | "routedJobs" | "providerCostUsd">): number | null {
  if (row.providerCostUsd === null) return row.routedJobs > 0 ? null : row.creditsUsd;
  return row.creditsUsd - row.providerCostUsd;
}

export interface CostTotals {
  jobs: number;
  credits: number;
  creditsUsd: number;
  routedJobs: number;
  providerCostUsd: number | null;
  /** The models' margins added up; null if any one is unknown. */
  margin: number | null;
}

export function costTotals(rows: ModelCost[]): CostTotals {
  const t: CostTotals = { jobs: 0, credits: 0, creditsUsd: 0, routedJobs: 0, providerCostUsd: null, margin: 0 };
  for (const r of rows) {
    t.jobs += r.jobs;
    t.credits += r.credits;
    t.creditsUsd += r.creditsUsd;
    t.routedJobs += r.routedJobs;
    if (r.providerCostUsd !== null) t.providerCostUsd = (t.providerCostUsd ?? 0) + r.providerCostUsd;
    const m = margin(r);
    t.margin = m === null || t.margin === null ? null : t.margin + m;
  }
  return t;
}
