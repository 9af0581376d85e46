// Form fields generated from a model's catalogue inputs: { type, enum, choices, minimum,
// maximum, default, required, ... }; ``hidden`` ones are left out. Media inputs take a URL,
// which the server fetches (the browser never loads it), or a local file, sent as a data: URI
// once its size is known to fit.
import { useRef, useState } from "preact/hooks";
import { bytes, humanize } from "../lib/format";
import { useSession } from "../lib/session";
import type { Account, InputSpec, Model, Scalar } from "../lib/types";
import { Icon } from "./icons";
import { Segmented } from "./ui";

export type FieldValue = string | boolean | string[];
export type FormValues = Record<string, FieldValue>;

const MEDIA = new Set(["image", "images", "audio", "video"]);
const LONG_TEXT = new Set(["prompt", "text", "negative_prompt", "lyrics", "system_prompt"]);
const ACCEPT: Record<string, string> = {
  image: "image/*",
  images: "image/*",
  audio: "audio/*",
  video: "video/*",
};

export function initialValues(model: Model, previous: FormValues = {}): FormValues {
  const values: FormValues = {};
  for (const [name, spec] of Object.entries(model.inputs)) {
    if (spec.hidden) continue;
    const def = spec.default;
    if (spec.type === "boolean") values[name] = def === true;
    else if (spec.type === "images") values[name] = Array.isArray(def) ? def.map(String) : [];
    else values[name] = def === null || def === undefined || Array.isArray(def) ? "" : String(def);
    // Keep what the user typed when switching between models that share a field.
    const kept = previous[name];
    if (kept !== undefined && typeof kept === typeof values[name] && !spec.enum) values[name] = kept;
  }
  return values;
}

function enumValue(spec: InputSpec, text: string): Scalar {
  return spec.enum?.find((v) => String(v) === text) ?? text;
}

/** The request's input object: empty fields left out, numbers as numbers. */
export function buildInput(model: Model, values: FormValues): Record<string, unknown> {
  const input: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(model.inputs)) {
    const value = values[name];
    if (spec.hidden || value === undefined) continue;
    if (spec.type === "boolean") {
      if (value === true || spec.default !== undefined) input[name] = value === true;
    } else if (Array.isArray(value)) {
      if (value.length) input[name] = value;
    } else if (typeof value === "string" && value.trim() !== "") {
      const text = spec.type === "string" ? value : value.trim();
      if (spec.enum) input[name] = enumValue(spec, text);
      else if (spec.type === "integer") input[name] = Number.parseInt(text, 10);
      else if (spec.type === "number") input[name] = Number.parseFloat(text);
      else input[name] = text;
    }
  }
  return input;
}

/** Required fields and settings first; optional media fold away; hidden fields are not shown. */
export function splitFields(model: Model): [string[], string[]] {
  const main: string[] = [];
  const more: string[] = [];
  for (const [name, spec] of Object.entries(model.inputs)) {
    if (spec.hidden) continue;
    (!spec.required && MEDIA.has(spec.type) ? more : main).push(name);
  }
  main.sort((a, b) => Number(!!model.inputs[b].required) - Number(!!model.inputs[a].required));
  return [main, more];
}

function wide(spec: InputSpec): boolean {
  return MEDIA.has(spec.type) || (spec.type === "string" && !spec.enum);
}

interface FieldProps {
  name: string;
  spec: InputSpec;
  value: FieldValue;
  onChange: (value: FieldValue) => void;
  /** What is wrong with the value, shown under the field. */
  invalid?: string | null;
}

/** The largest file the console sends: the server's cap on one input, and what fits in one
 * request once base64 makes it a third larger (with room for the rest of the body). */
export function largestUpload(account: Account): number {
  const inBody = Math.floor(((account.maxRequestBytes - 64 * 1024) * 3) / 4);
  return Math.max(0, Math.min(account.maxUploadBytes, inBody));
}

function tooLarge(file: File, account: Account): string | null {
  const limit = largestUpload(account);
  if (file.size <= limit) return null;
  return `${file.name} is ${bytes(file.size)}; this server takes files up to ${bytes(limit)}. Give a URL instead, or a smaller file.`;
}

function rangeHint(spec: InputSpec): string | null {
  const { minimum: lo, maximum: hi } = spec;
  if (lo !== undefined && hi !== undefined) return `${lo}–${hi}`;
  if (lo !== undefined) return `≥ ${lo}`;
  if (hi !== undefined) return `≤ ${hi}`;
  return null;
}

export function Field({ name, spec, value, onChange, invalid }: FieldProps) {
  const id = `field-${name}`;
  const hint = spec.type === "integer" || spec.type === "number" ? rangeHint(spec) : null;
  const items = spec.type === "images" ? itemsHint(spec) : null;
  const counted = spec.type === "string" && !spec.enum && spec.max_length !== undefined && typeof value === "string";
  return (
    <div class={`field ${wide(spec) ? "field-wide" : ""} ${invalid ? "field-invalid" : ""}`} data-field={name}>
      <div class="field-top">
        <label class="field-label" for={id}>
          {humanize(name)}
          {spec.required && <span class="required" title="required">*</span>}
        </label>
        {counted ? (
          <span class={`field-count ${value.length >= spec.max_length! ? "full" : ""}`} aria-live="polite">
            {value.length.toLocaleString()} / {spec.max_length!.toLocaleString()}
          </span>
        ) : (
          <code class="field-name">{name}</code>
        )}
      </div>
      <Control id={id} name={name} spec={spec} value={value} onChange={onChange} />
      {invalid && <p class="field-error" role="alert">{invalid}</p>}
      {(spec.description || hint || items) && (
        <p class="field-help">{[spec.description, hint && `Range ${hint}`, items].filter(Boolean).join(" · ")}</p>
      )}
    </div>
  );
}

function itemsHint(spec: InputSpec): string | null {
  if (spec.min_items && spec.max_items) return `${spec.min_items}–${spec.max_items} images`;
  if (spec.max_items) return `up to ${spec.max_items} images`;
  return null;
}

function Control({ id, name, spec, value, onChange }: FieldProps & { id: string }) {
  if (spec.type === "boolean")
    return (
      <label class="switch">
        <input id={id} name={name} type="checkbox" checked={value === true} onChange={(e) => onChange(e.currentTarget.checked)} />
        <span class="switch-track" />
        <span class="switch-label">{value === true ? "On" : "Off"}</span>
      </label>
    );
  if (spec.enum) return <Choice id={id} name={name} spec={spec} value={String(value)} onChange={onChange} />;
  if (spec.choices) return <Suggested id={id} name={name} choices={spec.choices} value={String(value)} onChange={onChange} />;
  if (spec.type === "images")
    return <MediaList id={id} spec={spec} values={Array.isArray(value) ? value : []} onChange={onChange} />;
  if (MEDIA.has(spec.type)) return <MediaInput id={id} spec={spec} value={String(value)} onChange={onChange} />;
  if (spec.type === "integer" || spec.type === "number")
    return (
      <input
        id={id}
        name={name}
        class="input"
        type="number"
        inputMode={spec.type === "integer" ? "numeric" : "decimal"}
        min={spec.minimum}
        max={spec.maximum}
        step={spec.type === "integer" ? 1 : "any"}
        required={spec.required}
        value={String(value)}
        onInput={(e) => onChange(e.currentTarget.value)}
      />
    );
  const long = LONG_TEXT.has(name) || (spec.max_length ?? 0) > 300;
  if (long)
    return (
      <textarea
        id={id}
        name={name}
        class="input textarea"
        rows={name === "prompt" || name === "text" ? 4 : 2}
        maxLength={spec.max_length}
        required={spec.required}
        placeholder={placeholderFor(name)}
        value={String(value)}
        onInput={(e) => onChange(e.currentTarget.value)}
      />
    );
  return (
    <input
      id={id}
      name={name}
      class="input"
      maxLength={spec.max_length}
      required={spec.required}
      value={String(value)}
      onInput={(e) => onChange(e.currentTarget.value)}
    />
  );
}

function placeholderFor(name: string): string {
  if (name === "prompt") return "Describe what you want to create…";
  if (name === "text") return "Type the text to speak…";
  if (name === "negative_prompt") return "What to avoid…";
  return "";
}

function Choice({ id, name, spec, value, onChange }: { id: string; name: string; spec: InputSpec; value: string; onChange: (v: FieldValue) => void }) {
  const options = (spec.enum ?? []).map(String);
  const short = options.length <= 4 && options.every((o) => o.length <= 9);
  if (short && (value !== "" || spec.required))
    return (
      <Segmented
        label={humanize(name)}
        value={value}
        options={options.map((o) => ({ value: o, label: spec.type === "integer" || spec.type === "number" ? `${o}` : o }))}
        onChange={onChange}
      />
    );
  return (
    <select id={id} name={name} class="input select" required={spec.required} value={value} onChange={(e) => onChange(e.currentTarget.value)}>
      {!spec.required && <option value="">Default</option>}
      {options.map((o) => (
        <option value={o} key={o}>
          {o}
        </option>
      ))}
    </select>
  );
}

/** The values a model offers (the engine's voices), and its default. */
function Suggested({ id, name, choices, value, onChange }: { id: string; name: string; choices: Scalar[]; value: string; onChange: (v: FieldValue) => void }) {
  return (
    <select id={id} name={name} class="input select" value={value} onChange={(e) => onChange(e.currentTarget.value)}>
      <option value="">Default</option>
      {choices.map(String).map((o) => (
        <option value={o} key={o}>
          {o}
        </option>
      ))}
    </select>
  );
}

function readFile(file: File): Promise<string> {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

function Preview({ kind, src }: { kind: string; src: string }) {
  if (kind === "image" || kind === "images") return <img class="media-thumb" src={src} alt="" />;
  if (kind === "audio") return <audio class="media-audio" src={src} controls />;
  if (kind === "video") return <video class="media-thumb" src={src} muted />;
  return null;
}

/** A URL the user typed: the server fetches it when the request is sent; the browser never
 * loads it, so nothing reaches that address from here and no preview can mislead. */
function RemoteItem({ url }: { url: string }) {
  let host = url;
  try {
    host = new URL(url).host;
  } catch {
    /* shown as typed */
  }
  return (
    <span class="media-remote" title={url}>
      <Icon name="link" size={16} />
      <span class="sr-only">{host}</span>
    </span>
  );
}

function MediaInput({ id, spec, value, onChange }: { id: string; spec: InputSpec; value: string; onChange: (v: FieldValue) => void }) {
  const { session } = useSession();
  const file = useRef<HTMLInputElement>(null);
  const [picked, setPicked] = useState<{ name: string; size: number } | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const [dragging, setDragging] = useState(false);
  const isData = value.startsWith("data:");
  const take = async (f: File | undefined) => {
    if (!f) return;
    const refused = tooLarge(f, session.account);
    setProblem(refused);
    if (refused) return;
    onChange(await readFile(f));
    setPicked({ name: f.name, size: f.size });
  };
  if (value && (isData || /^https?:\/\//.test(value)))
    return (
      <div class="media-picked">
        {isData ? <Preview kind={spec.type} src={value} /> : <RemoteItem url={value} />}
        <div class="media-meta">
          <div class="media-name">{isData ? picked?.name ?? "Uploaded file" : value}</div>
          <div class="muted small">{isData ? `${bytes(picked?.size ?? value.length * 0.75)} · uploaded with the request` : "the server fetches it when you generate"}</div>
        </div>
        <button type="button" class="icon-btn" aria-label="Remove" onClick={() => { onChange(""); setPicked(null); }}>
          <Icon name="x" size={16} />
        </button>
      </div>
    );
  return (
    <>
    {problem && <p class="field-error" role="alert">{problem}</p>}
    <div
      class={`dropzone ${dragging ? "dragging" : ""}`}
      onDragOver={(e) => { e.preventDefault(); setDragging(true); }}
      onDragLeave={() => setDragging(false)}
      onDrop={(e) => { e.preventDefault(); setDragging(false); void take(e.dataTransfer?.files[0]); }}
    >
      <button type="button" class="btn btn-secondary btn-sm" onClick={() => file.current?.click()}>
        <Icon name="upload" size={14} /> Upload {spec.type}
      </button>
      <span class="muted small">or</span>
      <input
        id={id}
        class="input input-sm"
        type="url"
        placeholder="https://… or data: URI"
        value={value}
        required={spec.required}
        onChange={(e) => onChange(e.currentTarget.value.trim())}
      />
      <input ref={file} type="file" hidden accept={ACCEPT[spec.type]} onChange={(e) => void take(e.currentTarget.files?.[0])} />
    </div>
    </>
  );
}

function MediaList({ id, spec, values, onChange }: { id: string; spec: InputSpec; values: string[]; onChange: (v: FieldValue) => void }) {
  const { session } = useSession();
  const file = useRef<HTMLInputElement>(null);
  const [url, setUrl] = useState("");
  const [problem, setProblem] = useState<string | null>(null);
  const full = spec.max_items !== undefined && values.length >= spec.max_items;
  const add = (more: string[]) => onChange([...values, ...more].slice(0, spec.max_items ?? 100));
  const upload = async (files: FileList | null | undefined) => {
    const all = Array.from(files ?? []);
    const refused = all.map((f) => tooLarge(f, session.account)).find(Boolean) ?? null;
    setProblem(refused);
    if (all.length && !refused) add(await Promise.all(all.map(readFile)));
  };
  return (
    <div class="media-list">
      {problem && <p class="field-error" role="alert">{problem}</p>}
      {values.length > 0 && (
        <div class="thumbs">
          {values.map((v, i) => (
            <div class="thumb" key={`${i}-${v.slice(-16)}`} title={v.startsWith("data:") ? `upload ${i + 1}` : v}>
              {v.startsWith("data:") ? <img src={v} alt={`input ${i + 1}`} /> : <RemoteItem url={v} />}
              <button type="button" class="thumb-remove" aria-label="Remove" onClick={() => onChange(values.filter((_, j) => j !== i))}>
                <Icon name="x" size={12} />
              </button>
            </div>
          ))}
        </div>
      )}
      {!full && (
        <div class="dropzone" onDragOver={(e) => e.preventDefault()} onDrop={(e) => { e.preventDefault(); void upload(e.dataTransfer?.files); }}>
          <button type="button" class="btn btn-secondary btn-sm" onClick={() => file.current?.click()}>
            <Icon name="upload" size={14} /> Upload images
          </button>
          <span class="muted small">or</span>
          <input id={id} class="input input-sm" type="url" placeholder="https://…" value={url} onInput={(e) => setUrl(e.currentTarget.value)} />
          <button type="button" class="btn btn-ghost btn-sm" disabled={!url.trim()} onClick={() => { add([url.trim()]); setUrl(""); }}>
            Add
          </button>
          <input ref={file} type="file" hidden multiple accept="image/*" onChange={(e) => void upload(e.currentTarget.files)} />
        </div>
      )}
    </div>
  );
}
