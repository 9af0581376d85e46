import { Component, type ComponentChildren, type JSX } from "preact";
import { useEffect, useState } from "preact/hooks";
import { ApiError } from "../lib/api";
import { dateTime, relativeTime } from "../lib/format";
import { shownState } from "../lib/jobs";
import type { Job } from "../lib/types";
import { Icon, type IconName } from "./icons";

type ButtonProps = Omit<JSX.HTMLAttributes<HTMLButtonElement>, "icon" | "loading" | "size"> & {
  variant?: "primary" | "secondary" | "ghost" | "danger";
  size?: "sm" | "md" | "lg";
  icon?: IconName;
  loading?: boolean;
  type?: "button" | "submit";
  disabled?: boolean;
  form?: string;
};

export function Button({ variant = "secondary", size = "md", icon, loading, children, class: cls, type = "button", disabled, ...rest }: ButtonProps) {
  return (
    <button
      type={type}
      class={`btn btn-${variant} btn-${size} ${cls ?? ""}`}
      disabled={disabled || loading}
      aria-busy={loading ? "true" : undefined}
      {...rest}
    >
      {loading ? <Spinner size={size === "sm" ? 14 : 16} /> : icon && <Icon name={icon} size={size === "sm" ? 14 : 16} />}
      {children}
    </button>
  );
}

export function Spinner({ size = 18 }: { size?: number }) {
  return <span class="spinner" style={{ width: size, height: size }} role="status" aria-label="Loading" />;
}

export function Card(props: {
  title?: ComponentChildren;
  subtitle?: ComponentChildren;
  actions?: ComponentChildren;
  children?: ComponentChildren;
  class?: string;
  flush?: boolean;
  id?: string;
}) {
  return (
    <section class={`card ${props.class ?? ""}`} id={props.id}>
      {(props.title || props.actions) && (
        <header class="card-header">
          <div>
            {props.title && <h2 class="card-title">{props.title}</h2>}
            {props.subtitle && <p class="card-subtitle">{props.subtitle}</p>}
          </div>
          {props.actions && <div class="card-actions">{props.actions}</div>}
        </header>
      )}
      <div class={props.flush ? "card-body flush" : "card-body"}>{props.children}</div>
    </section>
  );
}

export type Tone = "neutral" | "accent" | "success" | "danger" | "warning" | "info";

export function Badge({ tone = "neutral", children, dot, state }: { tone?: Tone; children: ComponentChildren; dot?: boolean; state?: string }) {
  return (
    <span class={`badge badge-${tone}`} data-state={state}>
      {dot && <span class="badge-dot" />}
      {children}
    </span>
  );
}

type Shown = Pick<Job, "status" | "code" | "type" | "finishReason" | "queuePosition">;

/** The job's state: a cancelled job (the wire says failed) reads Canceled, in a neutral tone. */
export function StatusBadge({ job }: { job: Shown }) {
  const state = shownState(job);
  if (state === "completed") return <Badge tone="success" dot state={state}>Completed</Badge>;
  if (state === "failed") return <Badge tone="danger" dot state={state}>Failed</Badge>;
  if (state === "canceled") return <Badge dot state={state}>Canceled</Badge>;
  if (state === "stopped") return <Badge dot state={state}>Stopped</Badge>;
  if (state !== "processing") return <Badge state="unknown">{String(state)}</Badge>;
  if (job.queuePosition) return <Badge tone="warning" dot state="queued">Queued #{job.queuePosition}</Badge>;
  return (
    <span class="badge badge-info live" data-state="processing">
      <span class="badge-dot" />
      Processing
    </span>
  );
}

export function Progress({ value, indeterminate }: { value?: number; indeterminate?: boolean }) {
  const pct = Math.max(0, Math.min(1, value ?? 0)) * 100;
  return (
    <div class={`progress ${indeterminate ? "indeterminate" : ""}`} role="progressbar" aria-valuenow={Math.round(pct)} aria-valuemin={0} aria-valuemax={100}>
      <div class="progress-bar" style={{ width: indeterminate ? undefined : `${pct}%` }} />
    </div>
  );
}

export function Empty({ icon = "inbox", title, children, action }: { icon?: IconName; title: string; children?: ComponentChildren; action?: ComponentChildren }) {
  return (
    <div class="empty">
      <div class="empty-icon">
        <Icon name={icon} size={22} />
      </div>
      <h3>{title}</h3>
      {children && <p>{children}</p>}
      {action && <div class="empty-action">{action}</div>}
    </div>
  );
}

export function ErrorBox({ error, title, onRetry }: { error: unknown; title?: string; onRetry?: () => void }) {
  const api = error instanceof ApiError ? error : null;
  const message = error instanceof Error ? error.message : String(error);
  return (
    <div class="alert alert-danger" role="alert">
      <Icon name="alert" size={18} />
      <div class="alert-body">
        <strong>{title ?? (api && api.status ? `Request failed (${api.status})` : "Something went wrong")}</strong>
        <p class="wire-error">{message}</p>
        {api?.detail && <p class="alert-detail">{api.detail}</p>}
        {api?.code && <code class="alert-code">{api.code}</code>}
      </div>
      {onRetry && (
        <Button size="sm" variant="ghost" icon="refresh" onClick={onRetry}>
          Retry
        </Button>
      )}
    </div>
  );
}

/** Shows ``fallback`` instead of children that failed to render, so one bad item (a job
 * with a field this console cannot read) never blanks the page around it. */
export class Boundary extends Component<{ fallback: (error: unknown) => ComponentChildren; children: ComponentChildren }, { error: { cause: unknown } | null }> {
  state = { error: null as { cause: unknown } | null };

  static getDerivedStateFromError(cause: unknown) {
    return { error: { cause } };
  }

  componentDidCatch(cause: unknown) {
    console.error("a part of the page could not be shown", cause);
  }

  render() {
    return this.state.error ? this.props.fallback(this.state.error.cause) : this.props.children;
  }
}

export function Loading({ label = "Loading…" }: { label?: string }) {
  return (
    <div class="loading">
      <Spinner /> <span>{label}</span>
    </div>
  );
}

export function SkeletonRows({ rows = 5, cols = 5 }: { rows?: number; cols?: number }) {
  return (
    <div class="skeleton-table" aria-hidden="true">
      {Array.from({ length: rows }, (_, r) => (
        <div class="skeleton-row" key={r}>
          {Array.from({ length: cols }, (_, c) => (
            <span class="skeleton" key={c} style={{ width: `${40 + ((r * 7 + c * 13) % 45)}%` }} />
          ))}
        </div>
      ))}
    </div>
  );
}

export function Modal({ title, onClose, children, footer, wide }: { title: string; onClose: () => void; children: ComponentChildren; footer?: ComponentChildren; wide?: boolean }) {
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => e.key === "Escape" && onClose();
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [onClose]);
  return (
    <div class="modal-backdrop" onClick={(e) => e.target === e.currentTarget && onClose()}>
      <div class={`modal ${wide ? "modal-wide" : ""}`} role="dialog" aria-modal="true" aria-label={title}>
        <header class="modal-header">
          <h2>{title}</h2>
          <button class="icon-btn" onClick={onClose} aria-label="Close">
            <Icon name="x" />
          </button>
        </header>
        <div class="modal-body">{children}</div>
        {footer && <footer class="modal-footer">{footer}</footer>}
      </div>
    </div>
  );
}

export function CopyField({ label, value, secret, testId }: { label: string; value: string; secret?: boolean; testId?: string }) {
  const [copied, setCopied] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(value);
    } catch {
      const range = document.createRange();
      const el = document.querySelector(`[data-copy="${CSS.escape(label)}"]`);
      if (el) range.selectNodeContents(el);
      getSelection()?.removeAllRanges();
      getSelection()?.addRange(range);
      document.execCommand("copy");
    }
    setCopied(true);
    setTimeout(() => setCopied(false), 1500);
  };
  return (
    <div class="copy-field">
      <span class="field-label">{label}</span>
      <div class={`copy-box ${secret ? "secret" : ""}`}>
        <code data-copy={label} data-testid={testId}>{value}</code>
        <button class="icon-btn" onClick={copy} aria-label={`Copy ${label}`} title="Copy">
          <Icon name={copied ? "check" : "copy"} size={16} />
        </button>
      </div>
    </div>
  );
}

export function Stat({ label, value, hint, icon, tone }: { label: string; value: ComponentChildren; hint?: ComponentChildren; icon?: IconName; tone?: Tone }) {
  return (
    <div class="stat">
      <div class="stat-head">
        {icon && (
          <span class={`stat-icon tone-${tone ?? "accent"}`}>
            <Icon name={icon} size={16} />
          </span>
        )}
        <span class="stat-label">{label}</span>
      </div>
      <div class="stat-value">{value}</div>
      {hint && <div class="stat-hint">{hint}</div>}
    </div>
  );
}

/** A unix time as "3 minutes ago", with the full date on hover; re-renders each 30 s. */
export function Time({ unix }: { unix?: number | null }) {
  const [, tick] = useState(0);
  useEffect(() => {
    const id = setInterval(() => tick((n) => n + 1), 30_000);
    return () => clearInterval(id);
  }, []);
  if (!unix) return <span class="muted">—</span>;
  return (
    <time dateTime={new Date(unix * 1000).toISOString()} title={dateTime(unix)}>
      {relativeTime(unix)}
    </time>
  );
}

export function PageHeader({ title, subtitle, actions }: { title: string; subtitle?: ComponentChildren; actions?: ComponentChildren }) {
  return (
    <div class="page-header">
      <div>
        <h1>{title}</h1>
        {subtitle && <p>{subtitle}</p>}
      </div>
      {actions && <div class="page-actions">{actions}</div>}
    </div>
  );
}

export function Segmented<T extends string>({ value, options, onChange, label }: { value: T; options: { value: T; label: string }[]; onChange: (v: T) => void; label: string }) {
  return (
    <div class="segmented" role="radiogroup" aria-label={label}>
      {options.map((o) => (
        <button
          type="button"
          role="radio"
          aria-checked={o.value === value}
          class={o.value === value ? "active" : ""}
          onClick={() => onChange(o.value)}
          key={o.value}
        >
          {o.label}
        </button>
      ))}
    </div>
  );
}
