import { type ComponentChildren, Fragment } from "preact";
import { useCallback, useEffect, useState } from "preact/hooks";
import { Icon } from "../components/icons";
import { OutputView } from "../components/media";
import { Badge, Boundary, Button, Card, Empty, ErrorBox, Loading, PageHeader, Progress, StatusBadge, Time } from "../components/ui";
import { api } from "../lib/api";
import { categoryLabel, credits, dateTime, humanize, took } from "../lib/format";
import { refunded, shownState, useLiveJob } from "../lib/jobs";
import { href } from "../lib/router";
import { useSession } from "../lib/session";
import type { Delivery, Job } from "../lib/types";

/** A job by its ``job_`` id, or by an image's ``res_`` result id: the server finds either. */
export function JobPage({ id }: { id: string }) {
  const [job, setJob] = useState<Job | null>(null);
  const [error, setError] = useState<unknown>(null);
  const load = useCallback(() => {
    setError(null);
    api.job(id).then(setJob, setError);
  }, [id]);
  useEffect(load, [load]);
  let body: ComponentChildren;
  if (error !== null) body = <ErrorBox error={error} title="Could not load the job" onRetry={load} />;
  else if (!job) body = <Card><Loading label="Loading job…" /></Card>;
  else
    body = (
      <Boundary fallback={(err) => <ErrorBox error={err} title="This job could not be shown" />}>
        <JobDetail initial={job} />
      </Boundary>
    );
  return (
    <div class="page">
      <a class="back" href={href("jobs")}><Icon name="arrowLeft" size={16} /> All jobs</a>
      {body}
    </div>
  );
}

function creditNote(job: Job): string {
  const state = shownState(job);
  if (refunded(job)) return " · refunded";
  if (state === "stopped") return " · charged: the reply was streamed";
  return "";
}

function JobDetail({ initial }: { initial: Job }) {
  const { refreshAccount } = useSession();
  const [deliveriesKey, setDeliveriesKey] = useState(0);
  const { job, failure, retry } = useLiveJob(initial, () => {
    void refreshAccount();
    setTimeout(() => setDeliveriesKey((n) => n + 1), 1500);
  });
  const [canceling, setCanceling] = useState(false);
  const [cancelError, setCancelError] = useState<unknown>(null);
  const cancel = async () => {
    setCanceling(true);
    try {
      await api.cancel(job.jobId);
    } catch (err) {
      setCancelError(err);
    } finally {
      setCanceling(false);
    }
  };
  const state = shownState(job);
  const urls = job.outputUrls ?? (job.outputUrl ? [job.outputUrl] : []);
  const live = state === "processing";
  return (
    <>
      <PageHeader
        title={job.jobId}
        subtitle={<span class="row-gap"><StatusBadge job={job} /> {categoryLabel(job.type)} · <code>{job.model}</code></span>}
        actions={live && <Button variant="danger" icon="stop" loading={canceling} onClick={cancel}>Cancel job</Button>}
      />
      {cancelError !== null && <ErrorBox error={cancelError} title="Could not cancel" />}
      {failure !== null && <ErrorBox error={failure} title="Could not check this job's status" onRetry={retry} />}
      <div class="grid-2">
        <Card title="Summary">
          <dl class="facts">
            <dt>Status</dt>
            <dd><StatusBadge job={job} /> <span class="sr-only" data-testid="job-status">{state}</span></dd>
            {live && (
              <>
                <dt>Progress</dt>
                <dd class="progress-fact">
                  {failure !== null ? (
                    <span class="muted">unknown: its status could not be checked</span>
                  ) : (
                    <>
                      <Progress value={job.progress} indeterminate={!job.progress} />{" "}
                      <span class="mono">{job.progress ? `${Math.round(job.progress * 100)}%` : job.queuePosition ? "queued" : "starting"}</span>
                    </>
                  )}
                </dd>
              </>
            )}
            <dt>Model</dt>
            <dd><a href={href(`models#${job.model}`)} class="mono">{job.model}</a></dd>
            <dt>Credits</dt>
            <dd>{credits(job.creditsUsed)}<span class="muted">{creditNote(job)}</span></dd>
            <dt>Created</dt>
            <dd>{job.createdAt ? dateTime(job.createdAt) : "—"} <span class="muted">(<Time unix={job.createdAt} />)</span></dd>
            <dt>Finished</dt>
            <dd>{job.completedAt ? dateTime(job.completedAt) : "—"}</dd>
            <dt>Took</dt>
            <dd data-testid="job-took">{took(job) ?? "—"}</dd>
            {job.resultId && (
              <>
                <dt>Result id</dt>
                <dd class="mono small">{job.resultId}</dd>
              </>
            )}
            {job.error && state === "failed" && (
              <>
                <dt>Error</dt>
                <dd class="wire-error">{job.error} {job.code && <code class="alert-code">{job.code}</code>}</dd>
              </>
            )}
          </dl>
        </Card>
        <Card title="Output">
          {state === "completed" || (state === "stopped" && job.status === "completed") ? (
            urls.length || job.text !== undefined ? <OutputView output={{ urls, text: job.text, segments: job.segments, duration: job.duration }} /> : <Empty title="No output file">{job.type === "chat" ? "A chat's reply is not stored: it went to the client that asked." : undefined}</Empty>
          ) : state === "failed" ? (
            <Empty icon="alert" title="No output">The job failed, so there is nothing to show.</Empty>
          ) : state === "canceled" || state === "stopped" ? (
            <Empty icon="stop" title="Canceled">It was canceled before it finished, so there is nothing to show.</Empty>
          ) : failure !== null ? (
            <Empty icon="alert" title="Status unknown">The job's status could not be checked; Retry above asks again.</Empty>
          ) : (
            <div class="working"><div class="working-visual"><div class="shimmer" /></div><Progress value={job.progress} indeterminate={!job.progress} /></div>
          )}
        </Card>
      </div>
      <Inputs input={job.input} />
      <Deliveries jobId={job.jobId} key={deliveriesKey} />
      <details class="card raw">
        <summary><Icon name="code" size={14} /> Response JSON <span class="muted">GET /v1/jobs/{job.jobId}</span></summary>
        <pre>{JSON.stringify(job, null, 2)}</pre>
      </details>
    </>
  );
}

/** An input as text: uploads were not kept in the job, and URLs are not loaded from here. */
function shown(value: unknown): string {
  if (value === "data:") return "uploaded file";
  if (Array.isArray(value)) return value.map(shown).join(", ") || "none";
  if (typeof value === "boolean") return value ? "yes" : "no";
  return String(value);
}

function Inputs({ input }: { input?: Record<string, unknown> }) {
  if (!input || !Object.keys(input).length) return null;
  const { prompt, text, ...rest } = input;
  const words = typeof prompt === "string" ? prompt : typeof text === "string" ? text : null;
  return (
    <Card title="Request" subtitle="The inputs this job was given, with their defaults.">
      <div class="form-stack">
        {words !== null && <blockquote class="prompt-quote" data-testid="job-prompt">{words}</blockquote>}
        {Object.keys(rest).length > 0 && (
          <dl class="facts">
            {Object.entries(rest).map(([name, value]) => (
              <Fragment key={name}>
                <dt>{humanize(name)}</dt>
                <dd class="mono small">{shown(value)}</dd>
              </Fragment>
            ))}
          </dl>
        )}
      </div>
    </Card>
  );
}

function Deliveries({ jobId }: { jobId: string }) {
  const [rows, setRows] = useState<Delivery[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [replaying, setReplaying] = useState(false);
  const [note, setNote] = useState<string | null>(null);
  const load = useCallback(() => {
    api.deliveries(jobId).then((r) => { setRows(r.data); setError(null); }, setError);
  }, [jobId]);
  useEffect(load, [load]);
  const replay = async () => {
    setReplaying(true);
    try {
      const r = await api.replay(jobId);
      setNote(`${r.scheduled} delivery scheduled again.`);
      setTimeout(load, 1500);
    } catch (err) {
      setError(err);
    } finally {
      setReplaying(false);
    }
  };
  return (
    <Card
      flush
      title="Webhook deliveries"
      subtitle="Every attempt to POST this job's result to its webhook_url (Standard Webhooks, retried with backoff)."
      actions={
        <>
          <Button size="sm" icon="refresh" onClick={load}>Refresh</Button>
          {rows && rows.length > 0 && <Button size="sm" icon="send" loading={replaying} onClick={replay}>Replay</Button>}
        </>
      }
    >
      {note && <div class="inline-note">{note}</div>}
      {error !== null && <div class="card-pad"><ErrorBox error={error} /></div>}
      {rows === null ? (
        <Loading />
      ) : rows.length === 0 ? (
        <Empty icon="link" title="No deliveries">This job has no webhook attempts: it was submitted without a webhook_url, or has not finished yet.</Empty>
      ) : (
        <div class="table-wrap">
          <table class="table">
            <thead>
              <tr><th>Attempted</th><th>Result</th><th>URL</th><th class="num">Latency</th><th>Webhook id</th></tr>
            </thead>
            <tbody>
              {rows.map((d, i) => (
                <tr key={i}>
                  <td>{dateTime(d.attemptedAt)}</td>
                  <td>
                    {d.statusCode !== null && d.statusCode < 300 ? <Badge tone="success">{d.statusCode}</Badge> : <Badge tone="danger">{d.statusCode ?? "no answer"}</Badge>}
                    {d.error && <div class="cell-error">{d.error}</div>}
                  </td>
                  <td class="mono small ellipsis" title={d.url}>{d.url}</td>
                  <td class="num">{d.latencyMs.toFixed(0)} ms</td>
                  <td class="mono small">{d.webhookId}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </Card>
  );
}
