import { useCallback, useEffect, useMemo, useState } from "preact/hooks";
import { Badge, Button, Card, Empty, ErrorBox, PageHeader, Segmented, SkeletonRows, Stat, type Tone } from "../components/ui";
import { api } from "../lib/api";
import { duration, usd } from "../lib/format";
import { type Period, PERIOD_HOURS, costTotals, margin, ordered, queueTotals } from "../lib/queue";
import { useSession } from "../lib/session";
import type { ModelCost, ModelQueue, Percentiles, ProviderStatus, QueueStats } from "../lib/types";

const QUEUE_REFRESH_MS = 5_000;

const PERIODS: { value: Period; label: string }[] = [
  { value: "24h", label: "24 hours" },
  { value: "7d", label: "7 days" },
  { value: "30d", label: "30 days" },
];

/** ``load`` now, then every ``ms`` while the tab is visible; a late answer of an older call
 * (another period) is dropped. */
function usePolling<T>(load: () => Promise<T>, ms: number | null): { value: T | null; error: unknown; reload: () => void } {
  const [value, setValue] = useState<T | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [nonce, setNonce] = useState(0);
  useEffect(() => {
    let live = true;
    const tick = () => {
      if (document.visibilityState !== "visible") return;
      load().then(
        (v) => {
          if (!live) return;
          setValue(v);
          setError(null);
        },
        (err) => live && setError(err),
      );
    };
    tick();
    const id = ms === null ? undefined : setInterval(tick, ms);
    document.addEventListener("visibilitychange", tick);
    return () => {
      live = false;
      clearInterval(id);
      document.removeEventListener("visibilitychange", tick);
    };
  }, [load, ms, nonce]);
  return { value, error, reload: useCallback(() => setNonce((n) => n + 1), []) };
}

/** For the admin key: how each model's queue stands now and how long its jobs take, what its
 * jobs were charged against what providers charged for them, and each provider's state. */
export function AdminQueuePage() {
  const [period, setPeriod] = useState<Period>("24h");
  const hours = PERIOD_HOURS[period];
  const queue = usePolling(useCallback(() => api.admin.queue(hours), [hours]), QUEUE_REFRESH_MS);
  const usage = usePolling(useCallback(() => api.admin.usage(hours).then((r) => r.data), [hours]), null);
  const providers = usePolling(useCallback(() => api.admin.providers().then((r) => r.data), []), null);
  const refresh = () => [queue, usage, providers].forEach((p) => p.reload());
  const label = PERIODS.find((p) => p.value === period)?.label ?? period;
  return (
    <div class="page">
      <PageHeader
        title="Queue & costs"
        subtitle="Jobs waiting and running by model, how long they take, and credits against provider cost: the server's own numbers (GET /admin/queue, /admin/usage, /admin/providers)."
        actions={
          <>
            <Segmented<Period> label="Period" value={period} onChange={setPeriod} options={PERIODS} />
            <Button icon="refresh" onClick={refresh}>Refresh</Button>
          </>
        }
      />
      <Summary queue={queue.value} usage={usage.value} label={label} />
      <QueueCard stats={queue.value} error={queue.error} onRetry={queue.reload} label={label} />
      <CostCard rows={usage.value} error={usage.error} onRetry={usage.reload} label={label} />
      <ProvidersCard rows={providers.value} error={providers.error} onRetry={providers.reload} />
    </div>
  );
}

function Summary({ queue, usage, label }: { queue: QueueStats | null; usage: ModelCost[] | null; label: string }) {
  const q = queue && queueTotals(queue.data);
  const c = usage && costTotals(usage);
  return (
    <div class="stats">
      <Stat icon="clock" tone="warning" label="Queued now" value={q ? q.queued.toLocaleString() : "—"} hint="jobs waiting to start" />
      <Stat icon="activity" tone="info" label="Running now" value={q ? q.running.toLocaleString() : "—"} hint={q ? `${q.finished.toLocaleString()} ended in ${label} · ${q.failed.toLocaleString()} failed` : "loading…"} />
      <Stat icon="coins" label={`Charged, ${label}`} value={c ? usd(c.creditsUsd) : "—"} hint={c ? `${c.credits.toLocaleString()} credits on completed jobs` : "loading…"} />
      <Stat icon="wallet" tone="success" label="Margin over providers" value={c ? money(c.margin) : "—"} hint={c ? `provider cost ${money(c.providerCostUsd)}` : "loading…"} />
    </div>
  );
}

const money = (n: number | null): string => (n === null ? "—" : usd(n));

const seconds = (p: Percentiles | null, key: keyof Percentiles) =>
  p === null ? <span class="muted">—</span> : duration(p[key]);

function ModelCell({ id }: { id: string }) {
  const { catalogue } = useSession();
  const name = useMemo(() => catalogue.models?.find((m) => m.id === id)?.name, [catalogue.models, id]);
  return (
    <td>
      {name && <strong>{name}</strong>}
      <div><code class="model-id">{id}</code></div>
    </td>
  );
}

function QueueCard({ stats, error, onRetry, label }: { stats: QueueStats | null; error: unknown; onRetry: () => void; label: string }) {
  const [idleToo, setIdleToo] = useState(false);
  const rows = stats && ordered(stats.data, idleToo);
  return (
    <Card
      flush
      title="Queue and latency by model"
      subtitle={`Queued and running now, refreshed every ${QUEUE_REFRESH_MS / 1000} s. Of the jobs created in the last ${label} that ended: how long they waited to start and ran, p50 and p99 of each model's newest ${(stats?.sampleLimit ?? 5000).toLocaleString()}.`}
      actions={<Segmented<"active" | "all"> label="Models shown" value={idleToo ? "all" : "active"} onChange={(v) => setIdleToo(v === "all")} options={[{ value: "active", label: "Active" }, { value: "all", label: "All models" }]} />}
    >
      {error !== null && <div class="card-pad"><ErrorBox error={error} title="Could not load the queue" onRetry={onRetry} /></div>}
      {rows === null ? (
        error === null && <SkeletonRows rows={4} cols={6} />
      ) : rows.length === 0 ? (
        <Empty icon="activity" title="No jobs in this period">Nothing is queued or running, and no job created in the period has ended.</Empty>
      ) : (
        <div class="table-wrap">
          <table class="table" data-testid="queue-table">
            <thead>
              <tr>
                <th>Model</th><th class="num">Queued</th><th class="num">Running</th><th class="num">Ended</th><th class="num">Failed</th>
                <th class="num">Wait p50</th><th class="num">Wait p99</th><th class="num">Run p50</th><th class="num">Run p99</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((m: ModelQueue) => (
                <tr key={m.model} data-model={m.model}>
                  <ModelCell id={m.model} />
                  <td class="num mono" data-col="queued">{m.queued > 0 ? <Badge tone="warning">{m.queued}</Badge> : 0}</td>
                  <td class="num mono" data-col="running">{m.running > 0 ? <Badge tone="info">{m.running}</Badge> : 0}</td>
                  <td class="num mono" data-col="finished">{m.finished.toLocaleString()}</td>
                  <td class="num mono" data-col="failed">{m.failed.toLocaleString()}</td>
                  <td class="num mono">{seconds(m.queueSeconds, "p50")}</td>
                  <td class="num mono">{seconds(m.queueSeconds, "p99")}</td>
                  <td class="num mono">{seconds(m.runSeconds, "p50")}</td>
                  <td class="num mono">{seconds(m.runSeconds, "p99")}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </Card>
  );
}

function CostCard({ rows, error, onRetry, label }: { rows: ModelCost[] | null; error: unknown; onRetry: () => void; label: string }) {
  const t = rows && costTotals(rows);
  return (
    <Card
      flush
      title="Credits against provider cost"
      subtitle={`Jobs created in the last ${label}. Charged: the credits kept on completed jobs, at 100 credits = $1. Provider cost: what providers reported for the jobs sent to them. Margin: charged less provider cost (unknown where jobs went to a provider that reported no cost).`}
    >
      {error !== null && <div class="card-pad"><ErrorBox error={error} title="Could not load usage" onRetry={onRetry} /></div>}
      {rows === null || t === null ? (
        error === null && <SkeletonRows rows={4} cols={6} />
      ) : rows.length === 0 ? (
        <Empty icon="coins" title="No jobs in this period">No job was created in the selected period.</Empty>
      ) : (
        <div class="table-wrap">
          <table class="table" data-testid="cost-table">
            <thead>
              <tr>
                <th>Model</th><th class="num">Jobs</th><th class="num">Completed</th><th class="num">Credits</th><th class="num">Charged</th>
                <th class="num">Via providers</th><th class="num">Provider cost</th><th class="num">Margin</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((r) => (
                <tr key={r.model} data-model={r.model}>
                  <ModelCell id={r.model} />
                  <td class="num mono">{r.jobs.toLocaleString()}</td>
                  <td class="num mono">{r.completed.toLocaleString()}</td>
                  <td class="num mono" data-col="credits">{r.credits.toLocaleString()}</td>
                  <td class="num mono" data-col="charged">{usd(r.creditsUsd)}</td>
                  <td class="num mono">{r.routedJobs.toLocaleString()}</td>
                  <td class="num mono" data-col="provider-cost">{money(r.providerCostUsd)}</td>
                  <td class="num mono strong" data-col="margin">{money(margin(r))}</td>
                </tr>
              ))}
            </tbody>
            <tfoot>
              <tr>
                <td class="strong">All models</td>
                <td class="num mono">{t.jobs.toLocaleString()}</td>
                <td />
                <td class="num mono">{t.credits.toLocaleString()}</td>
                <td class="num mono">{usd(t.creditsUsd)}</td>
                <td class="num mono">{t.routedJobs.toLocaleString()}</td>
                <td class="num mono">{money(t.providerCostUsd)}</td>
                <td class="num mono strong">{money(t.margin)}</td>
              </tr>
            </tfoot>
          </table>
        </div>
      )}
    </Card>
  );
}

const CIRCUIT: Record<ProviderStatus["circuit"], { tone: Tone; label: string }> = {
  closed: { tone: "success", label: "closed" },
  "half-open": { tone: "warning", label: "half-open (trying)" },
  open: { tone: "danger", label: "open (skipped)" },
};

function ProvidersCard({ rows, error, onRetry }: { rows: ProviderStatus[] | null; error: unknown; onRetry: () => void }) {
  return (
    <Card flush title="Providers" subtitle="Each installed provider: its key (masked by the server), where calls go, and its circuit breaker. A provider with an open circuit is skipped until the breaker tries it again.">
      {error !== null && <div class="card-pad"><ErrorBox error={error} title="Could not load the providers" onRetry={onRetry} /></div>}
      {rows === null ? (
        error === null && <SkeletonRows rows={3} cols={4} />
      ) : rows.length === 0 ? (
        <Empty icon="shield" title="No providers installed">Models run on this server's own engines only.</Empty>
      ) : (
        <div class="table-wrap">
          <table class="table" data-testid="providers-table">
            <thead>
              <tr><th>Provider</th><th>Key</th><th>Base URL</th><th>Circuit</th></tr>
            </thead>
            <tbody>
              {rows.map((p) => (
                <tr key={p.name} data-provider={p.name}>
                  <td><strong>{p.name}</strong></td>
                  <td>
                    <Badge tone={p.configured ? "success" : "neutral"} dot>{p.configured ? "configured" : "not configured"}</Badge>
                    <div class="muted small"><code>{p.keyEnv}</code> {p.configured && <code>{p.key}</code>}</div>
                  </td>
                  <td class="mono small">{p.baseUrl ?? <span class="muted">—</span>}</td>
                  <td><Badge tone={CIRCUIT[p.circuit]?.tone ?? "neutral"} state={p.circuit}>{CIRCUIT[p.circuit]?.label ?? p.circuit}</Badge></td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </Card>
  );
}
