import { useState } from "preact/hooks";
import { Icon, Logo } from "../components/icons";
import { Button, ErrorBox } from "../components/ui";
import { type Session, signIn } from "../lib/session";

export function LoginPage({ onSignedIn, notice }: { onSignedIn: (s: Session) => void; notice: string | null }) {
  const [key, setKey] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      onSignedIn(await signIn(key.trim()));
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };
  return (
    <main class="login">
      <div class="login-panel">
        <div class="login-brand">
          <Logo size={40} />
          <div>
            <div class="brand-name">hyperlocal</div>
            <div class="brand-sub">Console</div>
          </div>
        </div>
        <form class="card login-card" onSubmit={submit}>
          <h1>Sign in with an API key</h1>
          <p class="muted">
            Keys are issued by your server's operator (<code>hyperlocal keys create</code>). The key
            stays in this browser tab only.
          </p>
          {notice && (
            <div class="alert alert-warning">
              <Icon name="alert" size={18} />
              <div class="alert-body">{notice}</div>
            </div>
          )}
          <label class="field">
            <span class="field-label">API key</span>
            <input
              class="input mono"
              type="password"
              name="api-key"
              autoComplete="off"
              spellcheck={false}
              placeholder="ck_…"
              value={key}
              onInput={(e) => setKey(e.currentTarget.value)}
              required
              autoFocus
            />
          </label>
          {error !== null && <ErrorBox error={error} title="Could not sign in" />}
          <Button type="submit" variant="primary" size="lg" loading={busy} class="wide">
            Sign in
          </Button>
        </form>
        <p class="login-foot">
          Self-hosted media generation that speaks the Hypereal API ·{" "}
          <a href="/docs" target="_blank" rel="noreferrer">API reference</a>
        </p>
      </div>
    </main>
  );
}
