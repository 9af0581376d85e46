import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { Field, type FormValues, buildInput, initialValues, splitFields } from "../components/fields";
import { Icon, type IconName } from "../components/icons";
import { type Output, OutputView } from "../components/media";
import { Badge, Button, Card, Empty, ErrorBox, Loading, PageHeader, Progress, StatusBadge } from "../components/ui";
import { ApiError, api } from "../lib/api";
import { CATEGORIES, bytes, costLabel, credits, duration, priceLabel, took } from "../lib/format";
import { refunded, shownState, useLiveJob } from "../lib/jobs";
import { keptValue, setKept, useKept } from "../lib/kept";
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

// A result answered at once (an image) is shown with its job, read back from the server, so
// its id and time are the ones the jobs list shows.
type Run =
  | { state: "submitting"; started: number }
  | { state: "job"; job: Job; started: number }
  | { state: "done"; output: Output; credits: number; resultId?: string; job?: Job }
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

const quotes = new Map<string, number>();

/** What the form's settings cost, quoted by the server's pricing function (the one that charges
 * the submit), asked again only when an input the price depends on changes. */
function useQuote(model: Model, input: Record<string, unknown>): { cost: number | null; problem: unknown } {
  const asked = Object.fromEntries(model.priceInputs.filter((n) => input[n] !== undefined).map((n) => [n, input[n]]));
  const key = `${model.id}:${JSON.stringify(asked)}`;
  const atDefaults = Object.keys(asked).length === 0;
  const [, setTick] = useState(0);
  const [problem, setProblem] = useState<{ key: string; error: unknown } | null>(null);
  useEffect(() => {
    if (atDefaults || quotes.has(key)) return;
    const controller = new AbortController();
    const timer = setTimeout(() => {
      api.quote(model.id, asked, controller.signal).then(
        (q) => {
          quotes.set(key, q.credits);
          setTick((n) => n + 1);
        },
        (error: unknown) => controller.signal.aborted || setProblem({ key, error }),
      );
    }, 150);
    return () => {
      clearTimeout(timer);
      controller.abort();
    };
  }, [key]);
  if (atDefaults) return { cost: model.priceAtDefaults, problem: null };
  return { cost: quotes.get(key) ?? null, problem: problem?.key === key ? problem.error : null };
}

/** Make ``next`` the playground's kept model, keeping what was typed into the fields it shares
 * with the last one. */
function switchModel(kept: string, next: Model): void {
  setKept(`${kept}:model`, next.id);
  setKept<FormValues | undefined>(`${kept}:values`, (prev) => initialValues(next, prev));
}

/** Make a link's model (``?model=``) the kept one before the page shows anything. Switched in
 * an effect, the page would first show the last model's form, and text typed into it then would
 * be lost as the switch replaced its fields. Whether it switched. */
function followLink(kept: string, models: Model[], wanted: string | null): boolean {
  const next = models.find((m) => m.id === wanted);
  if (!next || keptValue<string>(`${kept}:model`) === next.id) return false;
  switchModel(kept, next);
  return true;
}

function Playground({ category, models, wanted }: { category: Category; models: Model[]; wanted: string | null }) {
  const { session, refreshAccount } = useSession();
  const kept = `playground:${category}`;
  const [invalid, setInvalid] = useState<Record<string, string>>({});
  const linked = useRef<string | null | undefined>(undefined);
  if (wanted !== linked.current) {
    linked.current = wanted;
    if (followLink(kept, models, wanted) && Object.keys(invalid).length) setInvalid({});
  }
  const [modelId] = useKept(`${kept}:model`, () => firstModel(models, wanted).id);
  const model = models.find((m) => m.id === modelId) ?? firstModel(models, wanted);
  const [values, setValues] = useKept<FormValues>(`${kept}:values`, () => initialValues(model));
  const [run, setRun] = useKept<Run | null>(`${kept}:run`, null);
  const [webhook, setWebhook] = useKept(`${kept}:webhook`, "");
  const resultCard = useRef<HTMLDivElement>(null);
  const [main, more] = useMemo(() => splitFields(model), [model]);
  const input = buildInput(model, values);
  const { cost, problem } = useQuote(model, input);
  const short = cost !== null && cost > session.account.credits;

  const pick = (id: string) => {
    switchModel(kept, models.find((m) => m.id === id)!);
    setInvalid({});
  };

  const change = (name: string, v: FormValues[string]) => {
    setValues((prev) => ({ ...prev, [name]: v }));
    if (invalid[name]) setInvalid(({ [name]: _, ...rest }) => rest);
  };

  /** Required text made only of spaces passes the browser's check; it is not a prompt. */
  const blank = (): Record<string, string> => {
    const found: Record<string, string> = {};
    for (const name of main) {
      const spec = model.inputs[name];
      if (spec.required && spec.type === "string" && !spec.enum && !String(values[name] ?? "").trim())
        found[name] = "Write something here: spaces alone are not enough.";
    }
    return found;
  };

  const submit = async (e: Event) => {
    e.preventDefault();
    const missing = blank();
    setInvalid(missing);
    if (Object.keys(missing).length) {
      document.getElementById(`field-${Object.keys(missing)[0]}`)?.focus();
      return;
    }
    const size = JSON.stringify(input).length;
    if (size > session.account.maxRequestBytes - 64 * 1024) {
      setRun({ state: "error", error: new Error(`The uploads in this request come to ${bytes(size)}; one request may carry at most ${bytes(session.account.maxRequestBytes)}. Give URLs, or smaller files.`) });
      return;
    }
    setRun({ state: "submitting", started: Date.now() });
    reveal();
    try {
      setRun(await generate(category, model, input, webhook.trim() || undefined));
    } catch (err) {
      setRun({ state: "error", error: err });
    }
    reveal();
    void refreshAccount();
  };

  /** On a narrow screen the result is below the form: bring it into view, once drawn. */
  const reveal = () =>
    requestAnimationFrame(() => {
      const card = resultCard.current;
      const top = card?.getBoundingClientRect().top ?? 0;
      if (card && (top > window.innerHeight * 0.5 || top < 0)) card.scrollIntoView({ behavior: "smooth", block: "start" });
    });

  const busy = run?.state === "submitting";
  return (
    <div class="playground">
      <form class="card form-card" onSubmit={submit} onKeyDown={(e) => { if (e.key === "Enter" && (e.metaKey || e.ctrlKey)) (e.currentTarget as HTMLFormElement).requestSubmit(); }}>
        <div class="card-body">
          <ModelPicker models={models} model={model} onPick={pick} />
          <div class="form-grid">
            {main.map((name) => (
              <Field key={`${model.id}:${name}`} name={name} spec={model.inputs[name]} value={values[name]} invalid={invalid[name]} onChange={(v) => change(name, v)} />
            ))}
          </div>
          <details class="more">
            <summary>
              <Icon name="plus" size={14} /> More options <span class="muted">({[...more, "webhook_url"].join(", ")})</span>
            </summary>
            <div class="form-grid">
              {more.map((name) => (
                <Field key={`${model.id}:${name}`} name={name} spec={model.inputs[name]} value={values[name]} onChange={(v) => change(name, v)} />
              ))}
              <Field
                name="webhook_url"
                spec={{ type: "string", description: "Optional: the result is POSTed here when the job ends (Standard Webhooks). With it, image requests run as jobs too." }}
                value={webhook}
                onChange={(v) => setWebhook(String(v))}
              />
            </div>
          </details>
          {short && <NoCredits cost={cost!} />}
        </div>
        <footer class="form-footer">
          <div class="cost">
            <span class="muted">Cost</span>
            <strong data-testid="estimate" class={cost === null ? "stale" : ""}>{cost !== null ? costLabel(model.price.kind, cost) : "…"}</strong>
            {problem !== null && <span class="cost-problem">{problem instanceof Error ? problem.message : String(problem)}</span>}
          </div>
          <Button
            type="submit"
            variant="primary"
            size="lg"
            icon="sparkles"
            loading={busy}
            disabled={!model.available || short}
            title={!model.available ? "This model's engine is not installed on the server" : short ? "The key has too few credits" : "Ctrl+Enter"}
          >
            Generate
          </Button>
        </footer>
      </form>
      <div ref={resultCard} class="result-anchor">
        <Card class="result-card" title="Result" actions={run && run.state !== "submitting" && <Button size="sm" variant="ghost" onClick={() => setRun(null)}>Clear</Button>}>
          <Result run={run} category={category} onEnd={(job) => { setRun((r) => (r?.state === "job" && r.job.jobId === job.jobId ? { ...r, job } : r)); void refreshAccount(); }} />
        </Card>
      </div>
    </div>
  );
}

/** Sends the request; a job to follow, or a finished result with its job read back. */
async function generate(category: Category, model: Model, input: Record<string, unknown>, hook?: string): Promise<Run> {
  const started = Date.now();
  const answer =
    category === "image" || category === "image_edit"
      ? await api.image(category, model.id, input, hook)
      : await api.media(category, model.id, input, hook);
  if ("pollUrl" in answer) {
    const res = answer as JobAccepted;
    const job: Job = { jobId: res.jobId, status: "processing", model: model.id, type: JOB_TYPE[category] ?? "image", creditsUsed: res.creditsUsed, progress: 0 };
    return { state: "job", job, started };
  }
  if ("data" in answer) {
    const res = answer as ImageResult;
    const job = await api.job(res.resultId).catch(() => undefined);
    return { state: "done", output: { urls: res.data.map((d) => d.url) }, credits: res.creditsUsed, resultId: res.resultId, job };
  }
  const res = answer as MediaResult;
  const job = res.jobId ? await api.job(res.jobId).catch(() => undefined) : undefined;
  const output = { urls: res.outputUrl ? [res.outputUrl] : [], text: res.text, segments: res.segments, duration: res.duration };
  return { state: "done", output, credits: res.creditsUsed, job };
}

function NoCredits({ cost }: { cost: number }) {
  const { session } = useSession();
  const { account, admin } = session;
  return (
    <div class="alert alert-warning" role="alert" data-testid="no-credits">
      <Icon name="coins" size={18} />
      <div class="alert-body">
        <strong>Not enough credits</strong>
        <p>
          This costs {credits(cost)} and the key “{account.keyName}” has {credits(account.credits)}.{" "}
          {admin ? (
            <>This is the admin key: <a href={href("admin/keys")}>grant credits to it</a>.</>
          ) : (
            <>Credits are given by the operator of this server: ask them to top up this key.</>
          )}
        </p>
      </div>
    </div>
  );
}

function ModelPicker({ models, model, onPick }: { models: Model[]; model: Model; onPick: (id: string) => void }) {
  const available = models.filter((m) => m.available);
  const missing = models.filter((m) => !m.available);
  const option = (m: Model) => (
    <option value={m.id} key={m.id}>
      {m.name} — {priceLabel(m)}
    </option>
  );
  // The native select stays (keyboard, screen readers, the phone's own picker) but is drawn
  // over by a box that wraps a long name and shows its price beside it, never cut off.
  return (
    <div class="model-picker">
      <label class="field-label" for="model">Model</label>
      <div class="model-select">
        <select id="model" name="model" class="model-select-native" value={model.id} onChange={(e) => onPick(e.currentTarget.value)}>
          {available.length > 0 && <optgroup label="Available">{available.map(option)}</optgroup>}
          {missing.length > 0 && <optgroup label="Engine not installed">{missing.map(option)}</optgroup>}
        </select>
        <div class="model-select-display" aria-hidden="true">
          <span class="model-select-name">{model.name}</span>
          <span class="badge badge-accent">{priceLabel(model)}</span>
          <Icon name="chevronDown" size={16} />
        </div>
      </div>
      <div class="model-info">
        <div class="model-info-row">
          <code class="model-id">{model.id}</code>
          {model.available ? <Badge tone="success" dot>Ready</Badge> : <Badge tone="warning" dot>Engine “{model.engine}” not installed</Badge>}
        </div>
        {model.description && <p class="muted">{model.description}</p>}
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

function Result({ run, category, onEnd }: { run: Run | null; category: Category; onEnd: (job: Job) => void }) {
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
  if (run.state === "job") return <LiveJob key={run.job.jobId} job={run.job} started={run.started} noun={noun} onEnd={onEnd} />;
  return (
    <div class="result">
      <ResultMeta credits={run.credits} job={run.job} resultId={run.resultId} />
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

function ResultMeta({ credits: used, job, resultId, link = true }: { credits: number; job?: Job; resultId?: string; link?: boolean }) {
  const time = job ? took(job) : null;
  return (
    <div class="result-meta">
      <span class="chip"><Icon name="coins" size={14} /> {credits(used)}</span>
      {time && <span class="chip" data-testid="took" title="From submit to result, as the server measured it"><Icon name="clock" size={14} /> {time}</span>}
      {job && link && <a class="chip mono" href={href(`jobs/${job.jobId}`)} data-testid="job-link">{job.jobId}</a>}
      {resultId && <span class="chip mono muted" title="The image's result id (GET /v1/jobs accepts it too)" data-testid="result-id">{resultId}</span>}
    </div>
  );
}

const percent = (progress?: number): string => (progress ? ` ${Math.round(progress * 100)}%` : "");

function LiveJob({ job: initial, started, noun, onEnd }: { job: Job; started: number; noun: string; onEnd: (job: Job) => void }) {
  const { job, failure, retry } = useLiveJob(initial, onEnd);
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
  const head = (
    <div class="job-head">
      <StatusBadge job={job} />
      <a class="mono small" href={href(`jobs/${job.jobId}`)} data-testid="job-link">{job.jobId}</a>
      {state === "processing" && (
        <Button size="sm" variant="ghost" icon="stop" loading={canceling} onClick={cancel}>Cancel</Button>
      )}
    </div>
  );
  if (state === "processing")
    return (
      <div class="result">
        {head}
        {cancelError !== null && <ErrorBox error={cancelError} title="Could not cancel" />}
        {failure !== null ? (
          <ErrorBox error={failure} title="Could not check this job's status" onRetry={retry} />
        ) : (
          <Working started={started} label={`Generating ${noun}…${percent(job.progress)}`} progress={job.progress} queue={job.queuePosition} />
        )}
      </div>
    );
  if (state === "canceled")
    return (
      <div class="result">
        {head}
        <p class="muted" data-testid="canceled-note">
          Canceled before it finished. {refunded(job) ? `The ${credits(job.creditsUsed)} charged for it were refunded.` : `Its ${credits(job.creditsUsed)} stand.`}
        </p>
      </div>
    );
  if (state === "failed")
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
      <ResultMeta credits={job.creditsUsed} job={job} link={false} />
      <OutputView output={{ urls, text: job.text, segments: job.segments, duration: job.duration }} />
    </div>
  );
}
