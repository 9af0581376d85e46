import { useCallback, useEffect, useState } from "preact/hooks";
import { BarChart, PALETTE } from "../components/chart";
import { Icon } from "../components/icons";
import { Badge, Button, Card, Empty, ErrorBox, PageHeader, Segmented, SkeletonRows, Stat, Time } from "../components/ui";
import { api } from "../lib/api";
import { dollars } from "../lib/format";
import { href } from "../lib/router";
import { useSession } from "../lib/session";
import type { LedgerLine } from "../lib/types";
import { type Span, buckets, spend, totals } from "../lib/usage";

const PAGE = 100;

export function BillingPage() {
  const { session, refreshAccount } = useSession();
  const account = session.account;
  const [lines, setLines] = useState<LedgerLine[] | null>(null);
  const [done, setDone] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [span, setSpan] = useState<Span>("7d");

  const load = useCallback(async () => {
    setError(null);
    try {
      const r = await api.ledger(PAGE);
      setLines(r.data);
      setDone(r.data.length < PAGE);
    } catch (err) {
      setError(err);
    }
  }, []);
  useEffect(() => {
    void load();
    void refreshAccount();
  }, [load]);

  const more = async () => {
    if (!lines?.length) return;
    setBusy(true);
    try {
      const r = await api.ledger(PAGE, lines[lines.length - 1].id);
      setLines([...lines, ...r.data]);
      setDone(r.data.length < PAGE);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const b = buckets(span);
  const t = lines ? totals(lines, b.starts[0]) : null;
  const values = lines ? spend(lines, b) : [];
  return (
    <div class="page">
      <PageHeader title="Credits & ledger" subtitle="Credits are charged when a request is accepted and refunded in full if it fails. 100 credits = $1." />
      {account.credits < 100 && (
        <div class="alert alert-warning" role="note" data-testid="get-credits">
          <Icon name="coins" size={18} />
          <div class="alert-body">
            <strong>{account.credits === 0 ? "This key has no credits" : "This key is low on credits"}</strong>
            <p>
              {session.admin ? (
                <>This is the admin key: <a href={href("admin/keys")}>grant credits</a> to any key, this one included.</>
              ) : (
                <>Credits are given by the operator of this server (the admin key, or <code>hyperlocal credits grant</code> on the server): ask them to top up “{account.keyName}”.</>
              )}
            </p>
          </div>
        </div>
      )}
      <div class="stats">
        <Stat icon="coins" label="Balance" value={<span data-testid="balance">{account.credits.toLocaleString()}</span>} hint={`credits · ≈ ${dollars(account.credits)}`} />
        <Stat icon="activity" tone="info" label={`Spent, last ${span}`} value={t ? t.charged - t.refunded : "—"} hint={t ? `${t.jobs} charges · ${t.refunded} refunded` : "loading…"} />
        <Stat icon="clock" tone="warning" label="Rate limit" value={account.rateLimit.toLocaleString()} hint="requests per rolling hour" />
        <Stat icon="layers" tone="success" label="Concurrent jobs" value={account.maxRunningJobs} hint="run at once; more wait in the queue" />
      </div>
      <Card
        title="Spending"
        subtitle="Credits charged, net of refunds, from this key's ledger."
        actions={<Segmented<Span> label="Period" value={span} onChange={setSpan} options={[{ value: "24h", label: "24 h" }, { value: "7d", label: "7 days" }, { value: "30d", label: "30 days" }]} />}
      >
        {!lines ? (
          <SkeletonRows rows={4} cols={1} />
        ) : values.some(Boolean) ? (
          <BarChart labels={b.labels} series={[{ label: account.keyName, color: PALETTE[0], values }]} height={220} />
        ) : (
          <Empty icon="chart" title="Nothing spent in this period">Charges for your requests show up here, per hour or per day.</Empty>
        )}
      </Card>
      <Card flush title="Ledger" subtitle="Every grant, charge and refund on this key, newest first." actions={<Button size="sm" icon="refresh" onClick={() => void load()}>Refresh</Button>}>
        {error !== null && <div class="card-pad"><ErrorBox error={error} title="Could not load the ledger" onRetry={() => void load()} /></div>}
        {lines === null ? (
          error === null && <SkeletonRows rows={6} cols={5} />
        ) : lines.length === 0 ? (
          <Empty icon="wallet" title="No ledger entries yet">Grants from the operator and the charges for your requests show up here.</Empty>
        ) : (
          <div class="table-wrap">
            <table class="table" data-testid="ledger-table">
              <thead>
                <tr><th>When</th><th>Entry</th><th class="num">Amount</th><th class="num">Balance</th><th>Job</th><th>Note</th></tr>
              </thead>
              <tbody>
                {lines.map((l) => (
                  <tr key={l.id}>
                    <td><Time unix={l.created} /></td>
                    <td><Badge tone={l.kind === "grant" ? "success" : l.kind === "refund" ? "info" : "neutral"}>{l.kind}</Badge></td>
                    <td class={`num mono ${l.amount > 0 ? "positive" : ""}`}>{l.amount > 0 ? `+${l.amount}` : l.amount}</td>
                    <td class="num mono">{l.balanceAfter.toLocaleString()}</td>
                    <td>{l.jobId ? <a class="mono small" href={href(`jobs/${l.jobId}`)}>{l.jobId}</a> : <span class="muted">—</span>}</td>
                    <td class="muted">{l.note || "—"}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
        {lines && !done && (
          <div class="table-foot"><Button size="sm" loading={busy} onClick={more}>Load older entries</Button></div>
        )}
      </Card>
    </div>
  );
}
