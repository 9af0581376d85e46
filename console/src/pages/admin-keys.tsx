import { useCallback, useEffect, useState } from "preact/hooks";
import { Icon } from "../components/icons";
import { Badge, Button, Card, CopyField, Empty, ErrorBox, Modal, PageHeader, SkeletonRows, Time } from "../components/ui";
import { api } from "../lib/api";
import { credits } from "../lib/format";
import { href } from "../lib/router";
import { useSession } from "../lib/session";
import type { IssuedKey, KeyInfo } from "../lib/types";

export function AdminKeysPage() {
  const { session } = useSession();
  const [keys, setKeys] = useState<KeyInfo[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [creating, setCreating] = useState(false);
  const [issued, setIssued] = useState<IssuedKey | null>(null);
  const [granting, setGranting] = useState<KeyInfo | null>(null);
  const [revoking, setRevoking] = useState<KeyInfo | null>(null);
  const [showRevoked, setShowRevoked] = useState(false);

  const load = useCallback(() => {
    api.admin.keys().then((r) => { setKeys(r.data); setError(null); }, setError);
  }, []);
  useEffect(load, [load]);

  const shown = keys?.filter((k) => showRevoked || !k.revoked) ?? null;
  const revokedCount = keys?.filter((k) => k.revoked).length ?? 0;
  return (
    <div class="page">
      <PageHeader
        title="API keys"
        subtitle="Issue keys to teams and services, give them credits, and revoke them. Only the admin key sees this page."
        actions={<Button variant="primary" icon="plus" onClick={() => setCreating(true)}>Create key</Button>}
      />
      {error !== null && <ErrorBox error={error} title="Could not load keys" onRetry={load} />}
      <Card
        flush
        title={`${keys ? keys.length - revokedCount : "…"} active keys`}
        actions={revokedCount > 0 && (
          <label class="check-inline">
            <input type="checkbox" checked={showRevoked} onChange={(e) => setShowRevoked(e.currentTarget.checked)} /> Show {revokedCount} revoked
          </label>
        )}
      >
        {shown === null ? (
          error === null && <SkeletonRows rows={4} cols={6} />
        ) : shown.length === 0 ? (
          <Empty icon="key" title="No keys" action={<Button variant="primary" icon="plus" onClick={() => setCreating(true)}>Create key</Button>} />
        ) : (
          <div class="table-wrap">
            <table class="table" data-testid="keys-table">
              <thead>
                <tr><th>Key</th><th class="num">Credits</th><th class="hide-sm">Limits</th><th class="hide-sm">Created</th><th><span class="sr-only">Actions</span></th></tr>
              </thead>
              <tbody>
                {shown.map((k) => {
                  const own = k.id === session.account.keyId;
                  return (
                    <tr key={k.id} class={k.revoked ? "revoked" : ""} data-key={k.id}>
                      <td>
                        <div class="key-name">
                          <span class="avatar small">{k.name.slice(0, 1).toUpperCase()}</span>
                          <strong>{k.name}</strong>
                          {k.admin && <Badge tone="accent">admin</Badge>}
                          {own && <Badge>signed in</Badge>}
                          {k.revoked && <Badge tone="danger">revoked</Badge>}
                        </div>
                        <div class="key-id mono small muted">{k.id} · {k.prefix}…</div>
                      </td>
                      <td class="num mono">{k.credits.toLocaleString()}</td>
                      <td class="mono small nowrap hide-sm">{k.rateLimit.toLocaleString()}/h · {k.maxRunningJobs} at once</td>
                      <td class="hide-sm nowrap"><Time unix={k.created} /></td>
                      <td class="actions">
                        {!k.revoked && (
                          <div class="row-actions">
                            <Button size="sm" icon="coins" aria-label="Grant" onClick={() => setGranting(k)}><span class="btn-label">Grant</span></Button>
                            <a class="btn btn-ghost btn-sm" aria-label="Usage" href={href(`admin/usage?key=${k.id}`)}><Icon name="chart" size={14} /> <span class="btn-label">Usage</span></a>
                            {/* The key signed in here cannot revoke itself: it would lock this page out. */}
                            {!own && <Button size="sm" variant="ghost" class="danger-text" icon="ban" aria-label="Revoke" onClick={() => setRevoking(k)}><span class="btn-label">Revoke</span></Button>}
                          </div>
                        )}
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        )}
      </Card>
      {creating && <CreateKey onClose={() => setCreating(false)} onCreated={(k) => { setCreating(false); setIssued(k); load(); }} />}
      {issued && <IssuedKeyModal issued={issued} onClose={() => setIssued(null)} />}
      {granting && <GrantCredits target={granting} onClose={() => setGranting(null)} onDone={() => { setGranting(null); load(); }} />}
      {revoking && <Revoke target={revoking} onClose={() => setRevoking(null)} onDone={() => { setRevoking(null); load(); }} />}
    </div>
  );
}

function CreateKey({ onClose, onCreated }: { onClose: () => void; onCreated: (k: IssuedKey) => void }) {
  const [name, setName] = useState("");
  const [amount, setAmount] = useState("1000");
  const [rate, setRate] = useState("");
  const [running, setRunning] = useState("");
  const [admin, setAdmin] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      onCreated(
        await api.admin.create({
          name: name.trim(),
          credits: Number(amount || 0),
          rate_limit: rate ? Number(rate) : undefined,
          max_running_jobs: running ? Number(running) : undefined,
          admin,
        }),
      );
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };
  return (
    <Modal
      title="Create an API key"
      onClose={onClose}
      footer={
        <>
          <Button variant="ghost" onClick={onClose}>Cancel</Button>
          <Button variant="primary" type="submit" loading={busy} form="create-key">Create key</Button>
        </>
      }
    >
      <form id="create-key" class="form-stack" onSubmit={submit}>
        <label class="field">
          <span class="field-label">Name</span>
          <input class="input" name="name" required maxLength={200} placeholder="e.g. marketing-site" value={name} onInput={(e) => setName(e.currentTarget.value)} autoFocus />
        </label>
        <div class="form-grid">
          <label class="field">
            <span class="field-label">Starting credits</span>
            <input class="input" name="credits" type="number" min={0} value={amount} onInput={(e) => setAmount(e.currentTarget.value)} />
            <span class="field-help">100 credits = $1</span>
          </label>
          <label class="field">
            <span class="field-label">Rate limit</span>
            <input class="input" name="rate_limit" type="number" min={1} placeholder="server default" value={rate} onInput={(e) => setRate(e.currentTarget.value)} />
            <span class="field-help">requests per rolling hour</span>
          </label>
          <label class="field">
            <span class="field-label">Concurrent jobs</span>
            <input class="input" name="max_running_jobs" type="number" min={1} placeholder="server default" value={running} onInput={(e) => setRunning(e.currentTarget.value)} />
          </label>
          <label class="field">
            <span class="field-label">Role</span>
            <label class="switch">
              <input type="checkbox" name="admin" checked={admin} onChange={(e) => setAdmin(e.currentTarget.checked)} />
              <span class="switch-track" />
              <span class="switch-label">{admin ? "Admin key" : "API key"}</span>
            </label>
          </label>
        </div>
        {error !== null && <ErrorBox error={error} title="Could not create the key" />}
      </form>
    </Modal>
  );
}

function IssuedKeyModal({ issued, onClose }: { issued: IssuedKey; onClose: () => void }) {
  return (
    <Modal title={`Key “${issued.name}” created`} onClose={onClose} footer={<Button variant="primary" onClick={onClose}>I have saved it</Button>}>
      <div class="alert alert-warning">
        <Icon name="shield" size={18} />
        <div class="alert-body">
          <strong>Copy the key now: it is shown only this once.</strong>
          <p>The server keeps only a hash. The webhook secret signs this key's webhook deliveries (Standard Webhooks).</p>
        </div>
      </div>
      <div class="form-stack" data-testid="issued-key">
        <CopyField label="API key" value={issued.key} secret testId="new-key" />
        <CopyField label="Webhook secret" value={issued.webhookSecret} secret testId="new-webhook-secret" />
        <p class="muted small">Key id <code>{issued.id}</code> · {credits(issued.credits)} · {issued.rateLimit}/h</p>
      </div>
    </Modal>
  );
}

function GrantCredits({ target, onClose, onDone }: { target: KeyInfo; onClose: () => void; onDone: () => void }) {
  const [amount, setAmount] = useState("500");
  const [note, setNote] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const { session, refreshAccount } = useSession();
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    try {
      await api.admin.grant(target.id, Number(amount), note.trim());
      if (target.id === session.account.keyId) await refreshAccount();
      onDone();
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };
  return (
    <Modal
      title={`Grant credits to “${target.name}”`}
      onClose={onClose}
      footer={
        <>
          <Button variant="ghost" onClick={onClose}>Cancel</Button>
          <Button variant="primary" type="submit" form="grant" loading={busy}>Grant credits</Button>
        </>
      }
    >
      <form id="grant" class="form-stack" onSubmit={submit}>
        <p class="muted">Current balance: {credits(target.credits)}.</p>
        <div class="quick-amounts">
          {[100, 500, 1000, 5000].map((n) => (
            <button type="button" class={`chip ${amount === String(n) ? "chip-active" : ""}`} key={n} onClick={() => setAmount(String(n))}>+{n.toLocaleString()}</button>
          ))}
        </div>
        <label class="field">
          <span class="field-label">Credits</span>
          <input class="input" name="credits" type="number" min={1} required value={amount} onInput={(e) => setAmount(e.currentTarget.value)} />
        </label>
        <label class="field">
          <span class="field-label">Note</span>
          <input class="input" name="note" maxLength={200} placeholder="admin grant" value={note} onInput={(e) => setNote(e.currentTarget.value)} />
        </label>
        {error !== null && <ErrorBox error={error} title="Could not grant credits" />}
      </form>
    </Modal>
  );
}

function Revoke({ target, onClose, onDone }: { target: KeyInfo; onClose: () => void; onDone: () => void }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const revoke = async () => {
    setBusy(true);
    try {
      await api.admin.revoke(target.id);
      onDone();
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };
  return (
    <Modal
      title={`Revoke “${target.name}”?`}
      onClose={onClose}
      footer={
        <>
          <Button variant="ghost" onClick={onClose}>Keep the key</Button>
          <Button variant="danger" icon="ban" loading={busy} onClick={revoke}>Revoke key</Button>
        </>
      }
    >
      <p>Requests with this key will answer 401 at once. This cannot be undone; its ledger stays.</p>
      {error !== null && <ErrorBox error={error} title="Could not revoke" />}
    </Modal>
  );
}
