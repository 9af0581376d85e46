// Usage over time from ledger lines: credits charged per hour or per day, net of refunds.
import type { LedgerLine } from "./types";

export type Span = "24h" | "7d" | "30d";

export interface Buckets {
  labels: string[];
  starts: number[];
  size: number;
}

export function buckets(span: Span, now = new Date()): Buckets {
  const hourly = span === "24h";
  const count = span === "24h" ? 24 : span === "7d" ? 7 : 30;
  const end = new Date(now);
  if (hourly) end.setMinutes(0, 0, 0);
  else end.setHours(0, 0, 0, 0);
  const size = hourly ? 3600 : 86400;
  const starts: number[] = [];
  const labels: string[] = [];
  for (let i = count - 1; i >= 0; i--) {
    const d = new Date(end);
    if (hourly) d.setHours(d.getHours() - i);
    else d.setDate(d.getDate() - i);
    starts.push(d.getTime() / 1000);
    labels.push(
      hourly
        ? d.toLocaleTimeString(undefined, { hour: "numeric" })
        : d.toLocaleDateString(undefined, { month: "short", day: "numeric" }),
    );
  }
  return { labels, starts, size };
}

/** Credits spent per bucket: charges minus the refunds of failed jobs, never below zero. */
export function spend(lines: LedgerLine[], b: Buckets): number[] {
  const values = b.starts.map(() => 0);
  const first = b.starts[0];
  for (const line of lines) {
    if (line.kind === "grant" || line.created < first) continue;
    const i = Math.min(b.starts.length - 1, Math.floor((line.created - first) / b.size));
    values[i] += -line.amount;
  }
  return values.map((v) => Math.max(0, v));
}

export interface Totals {
  charged: number;
  refunded: number;
  granted: number;
  jobs: number;
}

export function totals(lines: LedgerLine[], since: number): Totals {
  const t: Totals = { charged: 0, refunded: 0, granted: 0, jobs: 0 };
  for (const line of lines) {
    if (line.created < since) continue;
    if (line.kind === "charge") {
      t.charged += -line.amount;
      t.jobs += 1;
    } else if (line.kind === "refund") t.refunded += line.amount;
    else t.granted += line.amount;
  }
  return t;
}
