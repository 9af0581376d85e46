import { useEffect, useState } from "preact/hooks";
import { BarChart, PALETTE, type Series } from "../components/chart";
import { Button, Card, Empty, ErrorBox, Loading, PageHeader, Segmented } from "../components/ui";
import { api } from "../lib/api";
import { useRoute } from "../lib/router";
import type { KeyInfo, LedgerLine } from "../lib/types";
import { type Span, buckets, spend, totals } from "../lib/usage";

const TOP = 7;

interface KeyUsage {
  key: KeyInfo;
  lines: LedgerLine[];
}

/** Runs ``tasks`` a few at a time: the browser has few connections per host to share. */
async function pooled<T>(tasks: (() => Promise<T>)[], width = 4): Promise<T[]> {
  const results: T[] = new Array(tasks.length);
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const i = next++;
      results[i] = await tasks[i]();
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, tasks.length) }, worker));
  return results;
}

export function AdminUsagePage() {
  const { query } = useRoute();
  const focus = query.get("key");
  const [usage, setUsage] = useState<KeyUsage[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [span, setSpan] = useState<Span>("24h");
  const [reload, setReload] = useState(0);

  useEffect(() => {
    setUsage(null);
    setError(null);
    (async () => {
      const keys = (await api.admin.keys()).data.filter((k) => !focus || k.id === focus);
      const lines = await pooled(keys.map((k) => async () => (await api.admin.ledger(k.id)).data));
      setUsage(keys.map((key, i) => ({ key, lines: lines[i] })));
    })().catch(setError);
  }, [focus, reload]);

  const b = buckets(span);
  const rows = (usage ?? [])
    .map((u) => ({ ...u, values: spend(u.lines, b), totals: totals(u.lines, b.starts[0]) }))
    .sort((x, y) => y.totals.charged - y.totals.refunded - (x.totals.charged - x.totals.refunded));
  const active = rows.filter((r) => r.values.some(Boolean));
  const series: Series[] = active.slice(0, TOP).map((r, i) => ({ label: r.key.name, color: PALETTE[i], values: r.values }));
  if (active.length > TOP)
    series.push({
      label: `${active.length - TOP} more`,
      color: PALETTE[TOP],
      values: b.labels.map((_, i) => active.slice(TOP).reduce((s, r) => s + r.values[i], 0)),
    });
  const focused = focus && usage?.[0]?.key;

  return (
    <div class="page">
      <PageHeader
        title={focused ? `Usage — ${focused.name}` : "Usage"}
        subtitle="Credits charged per key over time, net of refunds, from each key's latest 500 ledger entries."
        actions={
          <>
            {focus && <a class="btn btn-ghost btn-md" href="#/admin/usage">All keys</a>}
            <Button icon="refresh" onClick={() => setReload((n) => n + 1)}>Refresh</Button>
          </>
        }
      />
      {error !== null && <ErrorBox error={error} title="Could not load usage" onRetry={() => setReload((n) => n + 1)} />}
      <Card
        title={span === "24h" ? "Credits per hour" : "Credits per day"}
        actions={<Segmented<Span> label="Period" value={span} onChange={setSpan} options={[{ value: "24h", label: "24 hours" }, { value: "7d", label: "7 days" }, { value: "30d", label: "30 days" }]} />}
      >
        {usage === null ? (
          error === null && <Loading label="Reading the ledgers…" />
        ) : active.length === 0 ? (
          <Empty icon="chart" title="No usage in this period">No key was charged for a request in the selected period.</Empty>
        ) : (
          <div data-testid="usage-chart"><BarChart labels={b.labels} series={series} /></div>
        )}
      </Card>
      {usage && (
        <Card flush title="By key" subtitle="In the selected period.">
          <div class="table-wrap">
            <table class="table">
              <thead>
                <tr><th>Key</th><th class="num">Requests charged</th><th class="num">Charged</th><th class="num">Refunded</th><th class="num">Net spend</th><th class="num">Granted</th><th class="num">Balance</th></tr>
              </thead>
              <tbody>
                {rows.map((r) => {
                  const color = series.find((s) => s.label === r.key.name)?.color;
                  return (
                    <tr key={r.key.id} class={r.key.revoked ? "revoked" : ""}>
                      <td>
                        <a href={`#/admin/usage?key=${r.key.id}`} class="key-name">
                          <span class="swatch" style={{ background: color ?? "var(--border)" }} />
                          {r.key.name}
                        </a>
                      </td>
                      <td class="num mono">{r.totals.jobs}</td>
                      <td class="num mono">{r.totals.charged.toLocaleString()}</td>
                      <td class="num mono">{r.totals.refunded.toLocaleString()}</td>
                      <td class="num mono strong">{(r.totals.charged - r.totals.refunded).toLocaleString()}</td>
                      <td class="num mono">{r.totals.granted.toLocaleString()}</td>
                      <td class="num mono">{r.key.credits.toLocaleString()}</td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        </Card>
      )}
    </div>
  );
}
