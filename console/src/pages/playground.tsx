import { useEffect, useMemo, useState } from "preact/hooks";
import { Field, type FormValues, buildInput, initialValues, splitFields } from "../components/fields";
import { Icon, type IconName } from "../components/icons";
import { type Output, OutputView } from "../components/media";
import { Badge, Button, Card, Empty, ErrorBox, Loading, PageHeader, Progress, StatusBadge } from "../components/ui";
import { ApiError, api } from "../lib/api";
import { CATEGORIES, credits, duration, estimate, priceLabel, took } from "../lib/format";
import { useLiveJob } from "../lib/jobs";
import { href } from "../lib/router";
import { useSession } from "../lib/session";
import type { Category, ImageResult, Job, JobAccepted, MediaResult, Model } from "../lib/types";

const ICONS: Record<string, IconName> = { image: "image", image_edit: "wand", video: "video", audio: "audio", "3d": "cube" };
const BLURB: Record<string, string> = {
  image: "Text to image, answered synchronously by POST /v1/images/generate.",
  image_edit: "Edit or combine images from a prompt with POST /v1/images/edit.",
  video: "Video generation runs as a job; its status streams live from /v1/jobs/{id}/events.",
  audio: "Speech, voice cloning, music and transcription with POST /v1/audio/generate.",
  "3d": "Image- and text-to-3D with POST /v1/3d/generate; results are GLB, previewed here.",
};
const JOB_TYPE: Record<string, string> = { video: "video", audio: "audio", "3d": "3d" };

type Run =
  | { state: "submitting"; started: number }
  | { state: "job"; job: Job; started: number }
  | { state: "done"; output: Output; credits: number; id?: string; jobId?: string; seconds: number }
  | { state: "error"; error: unknown };

export function PlaygroundPage({ category, model }: { category: Category; model: string | null }) {
  const { catalogue } = useSession();
  const meta = CATEGORIES.find((c) => c.id === category)!;
  const models = catalogue.models?.filter((m) => m.category === category) ?? null;
  let body;
  if (catalogue.error) body = <ErrorBox error={catalogue.error} title="Could not load the models" onRetry={catalogue.reload} />;
  else if (!models) body = <Card><Loading label="Loading models…" /></Card>;
  else if (!models.length)
    body = (
      <Card>
        <Empty icon={ICONS[category]} title={`No ${meta.label.toLowerCase()} models`}>
          This server's catalogue has no {meta.label.toLowerCase()} models. Operators add models with
          their own catalogue file (HYPERLOCAL_CATALOG).
        </Empty>
      </Card>
    );
  else body = <Playground category={category} models={models} wanted={model} />;
  return (
    <div class="page">
      <PageHeader title={`${meta.label} playground`} subtitle={BLURB[category]} />
      {body}
    </div>
  );
}

function firstModel(models: Model[], wanted: string | null): Model {
  return models.find((m) => m.id === wanted) ?? models.find((m) => m.available) ?? models[0];
}

function Playground({ category, models, wanted }: { category: Category; models: Model[]; wanted: string | null }) {
  const { refreshAccount } = useSession();
  const [model, setModel] = useState(() => firstModel(models, wanted));
  const [values, setValues] = useState<FormValues>(() => initialValues(model));
  const [run, setRun] = useState<Run | null>(null);
  const [webhook, setWebhook] = useState("");
  const [main, more] = useMemo(() => splitFields(model), [model]);
  const input = buildInput(model, values);
  const cost = estimate(model.price, input);

  const pick = (id: string) => {
    const next = models.find((m) => m.id === id)!;
    setModel(next);
    setValues((prev) => initialValues(next, prev));
  };

  useEffect(() => {
    if (wanted && wanted !== model.id && models.some((m) => m.id === wanted)) pick(wanted);
  }, [wanted]);

  const submit = async (e: Event) => {
    e.preventDefault();
    const started = Date.now();
    setRun({ state: "submitting", started });
    try {
      const hook = webhook.trim() || undefined;
      const answer =
        category === "image" || category === "image_edit"
          ? await api.image(category, model.id, input, hook)
          : await api.media(category, model.id, input, hook);
      const seconds = (Date.now() - started) / 1000;
      if ("pollUrl" in answer) {
        const res = answer as JobAccepted;
        const job: Job = { jobId: res.jobId, status: "processing", model: model.id, type: JOB_TYPE[category] ?? "image", creditsUsed: res.creditsUsed, progress: 0 };
        setRun({ state: "job", job, started });
      } else if ("data" in answer) {
        const res = answer as ImageResult;
        setRun({ state: "done", output: { urls: res.data.map((d) => d.url) }, credits: res.creditsUsed, id: res.resultId, seconds });
      } else {
        const res = answer as MediaResult;
        const output = { urls: res.outputUrl ? [res.outputUrl] : [], text: res.text, segments: res.segments, duration: res.duration };
        setRun({ state: "done", output, credits: res.creditsUsed, jobId: res.jobId, seconds });
      }
    } catch (err) {
      setRun({ state: "error", error: err });
    }
    void refreshAccount();
  };

  const busy = run?.state === "submitting";
  return (
    <div class="playground">
      <form class="card form-card" onSubmit={submit} onKeyDown={(e) => { if (e.key === "Enter" && (e.metaKey || e.ctrlKey)) (e.currentTarget as HTMLFormElement).requestSubmit(); }}>
        <div class="card-body">
          <ModelPicker models={models} model={model} onPick={pick} />
          <div class="form-grid">
            {main.map((name) => (
              <Field key={`${model.id}:${name}`} name={name} spec={model.inputs[name]} value={values[name]} onChange={(v) => setValues({ ...values, [name]: v })} />
            ))}
          </div>
          <details class="more">
            <summary>
              <Icon name="plus" size={14} /> More options <span class="muted">({[...more, "webhook_url"].join(", ")})</span>
            </summary>
            <div class="form-grid">
              {more.map((name) => (
                <Field key={`${model.id}:${name}`} name={name} spec={model.inputs[name]} value={values[name]} onChange={(v) => setValues({ ...values, [name]: v })} />
              ))}
              <Field
                name="webhook_url"
                spec={{ type: "string", description: "Optional: the result is POSTed here when the job ends (Standard Webhooks). With it, image requests run as jobs too." }}
                value={webhook}
                onChange={(v) => setWebhook(String(v))}
              />
            </div>
          </details>
        </div>
        <footer class="form-footer">
          <div class="cost">
            <span class="muted">Cost</span>
            <strong data-testid="estimate">{cost !== null ? credits(cost) : priceLabel(model.price)}</strong>
          </div>
          <Button type="submit" variant="primary" size="lg" icon="sparkles" loading={busy} disabled={!model.available} title={model.available ? "Ctrl+Enter" : "This model's engine is not installed on the server"}>
            Generate
          </Button>
        </footer>
      </form>
      <Card class="result-card" title="Result" actions={run && run.state !== "submitting" && <Button size="sm" variant="ghost" onClick={() => setRun(null)}>Clear</Button>}>
        <Result run={run} category={category} onEnd={() => void refreshAccount()} />
      </Card>
    </div>
  );
}

function ModelPicker({ models, model, onPick }: { models: Model[]; model: Model; onPick: (id: string) => void }) {
  const available = models.filter((m) => m.available);
  const missing = models.filter((m) => !m.available);
  const option = (m: Model) => (
    <option value={m.id} key={m.id}>
      {m.name} — {priceLabel(m.price)}
    </option>
  );
  return (
    <div class="model-picker">
      <label class="field-label" for="model">Model</label>
      <select id="model" name="model" class="input select model-select" value={model.id} onChange={(e) => onPick(e.currentTarget.value)}>
        {available.length > 0 && <optgroup label="Available">{available.map(option)}</optgroup>}
        {missing.length > 0 && <optgroup label="Engine not installed">{missing.map(option)}</optgroup>}
      </select>
      <div class="model-info">
        <div class="model-info-row">
          <code class="model-id">{model.id}</code>
          <Badge tone="accent">{priceLabel(model.price)}</Badge>
          {model.available ? <Badge tone="success" dot>Ready</Badge> : <Badge tone="warning" dot>Engine “{model.engine}” not installed</Badge>}
          {model.evidence === "inferred" && <Badge>inferred id</Badge>}
        </div>
        {model.description && <p class="muted">{model.description}</p>}
        {model.price.note && <p class="muted small">Price: {model.price.note}</p>}
      </div>
    </div>
  );
}

function useElapsed(started: number, running: boolean): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    if (!running) return;
    const id = setInterval(() => setNow(Date.now()), 250);
    return () => clearInterval(id);
  }, [running]);
  return Math.max(0, (now - started) / 1000);
}

function Result({ run, category, onEnd }: { run: Run | null; category: Category; onEnd: () => void }) {
  const noun = CATEGORIES.find((c) => c.id === category)!.noun;
  if (!run)
    return (
      <Empty icon={ICONS[category]} title={`Your ${noun} will appear here`}>
        Pick a model, fill in its inputs and press Generate. Every request is charged in credits
        at submit and refunded if it fails.
      </Empty>
    );
  if (run.state === "submitting") return <Working started={run.started} label={`Generating ${noun}…`} />;
  if (run.state === "error") {
    const failed = run.error instanceof ApiError && run.error.status >= 500;
    return <ErrorBox error={run.error} title={failed ? "Generation failed" : "The request was refused"} />;
  }
  if (run.state === "job") return <LiveJob job={run.job} started={run.started} noun={noun} onEnd={onEnd} />;
  return (
    <div class="result">
      <ResultMeta credits={run.credits} seconds={run.seconds} id={run.id} jobId={run.jobId} />
      <OutputView output={run.output} />
    </div>
  );
}

function Working({ started, label, progress, queue }: { started: number; label: string; progress?: number; queue?: number }) {
  const elapsed = useElapsed(started, true);
  return (
    <div class="working" data-testid="working">
      <div class="working-visual">
        <div class="shimmer" />
      </div>
      <div class="working-row">
        <span>{queue ? `Queued — position ${queue}` : label}</span>
        <span class="muted mono">{duration(elapsed)}</span>
      </div>
      <Progress value={progress} indeterminate={!progress} />
    </div>
  );
}

function ResultMeta({ credits: used, seconds, took: ran, id, jobId }: { credits: number; seconds?: number; took?: string; id?: string; jobId?: string }) {
  const time = ran ?? (seconds !== undefined ? duration(seconds) : undefined);
  return (
    <div class="result-meta">
      <span class="chip"><Icon name="coins" size={14} /> {credits(used)}</span>
      {time && <span class="chip"><Icon name="clock" size={14} /> {time}</span>}
      {jobId ? (
        <a class="chip mono" href={href(`jobs/${jobId}`)}>{jobId}</a>
      ) : (
        id && <span class="chip mono">{id}</span>
      )}
    </div>
  );
}

function LiveJob({ job: initial, started, noun, onEnd }: { job: Job; started: number; noun: string; onEnd: () => void }) {
  const job = useLiveJob(initial, onEnd);
  const [canceling, setCanceling] = useState(false);
  const cancel = async () => {
    setCanceling(true);
    try {
      await api.cancel(job.jobId);
    } finally {
      setCanceling(false);
    }
  };
  const head = (
    <div class="job-head">
      <StatusBadge status={job.status} queuePosition={job.queuePosition} />
      <a class="mono small" href={href(`jobs/${job.jobId}`)} data-testid="job-link">{job.jobId}</a>
      {job.status === "processing" && (
        <Button size="sm" variant="ghost" icon="stop" loading={canceling} onClick={cancel}>Cancel</Button>
      )}
    </div>
  );
  if (job.status === "processing")
    return (
      <div class="result">
        {head}
        <Working started={started} label={`Generating ${noun}… ${Math.round((job.progress ?? 0) * 100)}%`} progress={job.progress} queue={job.queuePosition} />
      </div>
    );
  if (job.status === "failed")
    return (
      <div class="result">
        {head}
        <ErrorBox error={new Error(job.error ?? "The job failed")} title={`Generation failed${job.code ? ` (${job.code})` : ""}`} />
        <p class="muted small">The {credits(job.creditsUsed)} charged for this job were refunded.</p>
      </div>
    );
  const urls = job.outputUrls ?? (job.outputUrl ? [job.outputUrl] : []);
  return (
    <div class="result">
      {head}
      <ResultMeta credits={job.creditsUsed} took={took(job) ?? undefined} />
      <OutputView output={{ urls, text: job.text, segments: job.segments, duration: job.duration }} />
    </div>
  );
}
