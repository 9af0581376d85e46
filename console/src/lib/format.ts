import type { Category, Job, Model, PriceRule } from "./types";

export const CATEGORIES: { id: Category; label: string; noun: string }[] = [
  { id: "image", label: "Image", noun: "image" },
  { id: "image_edit", label: "Image edit", noun: "edited image" },
  { id: "video", label: "Video", noun: "video" },
  { id: "audio", label: "Audio", noun: "audio" },
  { id: "3d", label: "3D", noun: "3D model" },
  { id: "chat", label: "Chat", noun: "reply" },
];

export const categoryLabel = (c: string): string =>
  CATEGORIES.find((x) => x.id === c)?.label ?? c;

const plural = (n: number, word: string): string => `${n.toLocaleString()} ${word}${n === 1 ? "" : "s"}`;

export const credits = (n: number): string => plural(n, "credit");

/** 100 credits are one US dollar (spec §1). */
export const dollars = (n: number): string =>
  (n / 100).toLocaleString(undefined, { style: "currency", currency: "USD" });

/** An amount in US dollars, to the tenth of a cent where it is that small (a provider's
 * reported cost of one image can be $0.003). */
export const usd = (n: number): string =>
  n.toLocaleString(undefined, { style: "currency", currency: "USD", maximumFractionDigits: Math.abs(n) < 1 && n !== 0 ? 4 : 2 });

/** A model's price as the server computed it for its default settings (``priceAtDefaults``):
 * the rule's kind says only what the number counts, never how it is worked out. */
export function priceLabel(model: Pick<Model, "price" | "priceAtDefaults">): string {
  return costLabel(model.price.kind, model.priceAtDefaults);
}

/** ``credits`` quoted by the server, with what a per-minute or per-message price counts. */
export function costLabel(kind: PriceRule["kind"], n: number): string {
  if (kind === "per_minute") return `${credits(n)} / min`;
  if (kind === "per_message") return `from ${credits(n)}`;
  return credits(n);
}

const ACRONYMS: Record<string, string> = { url: "URL", pbr: "PBR", asr: "ASR", cfg: "CFG", id: "ID" };

/** A wire name as a label: ``front_image_url`` is "Front image URL". */
export const humanize = (name: string): string => {
  const words = name.split("_").map((w) => ACRONYMS[w] ?? w);
  const text = words.join(" ");
  return text.charAt(0).toUpperCase() + text.slice(1);
};

const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

export function relativeTime(unix: number, now = Date.now() / 1000): string {
  const diff = unix - now;
  const abs = Math.abs(diff);
  if (abs < 45) return "just now";
  if (abs < 3600) return rtf.format(Math.round(diff / 60), "minute");
  if (abs < 86400) return rtf.format(Math.round(diff / 3600), "hour");
  if (abs < 86400 * 30) return rtf.format(Math.round(diff / 86400), "day");
  return dateTime(unix);
}

export const dateTime = (unix: number): string =>
  new Date(unix * 1000).toLocaleString(undefined, {
    year: "numeric",
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
  });

export function duration(seconds: number): string {
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds % 60);
  return `${m} min ${s} s`;
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/** What a URL holds, by its extension: outputs are served under /files with one. */
export function mediaKind(url: string): "image" | "video" | "audio" | "model" | "other" {
  const ext = url.split("?")[0].split(".").pop()?.toLowerCase() ?? "";
  if (["png", "jpg", "jpeg", "webp", "gif"].includes(ext)) return "image";
  if (["mp4", "webm", "mov"].includes(ext)) return "video";
  if (["mp3", "wav", "ogg", "flac", "m4a"].includes(ext)) return "audio";
  if (["glb", "gltf"].includes(ext)) return "model";
  return "other";
}

/** How long a job took, submit to end, as the server measured it: the same figure in the
 * playground, the jobs list and the job page. */
export function took(job: Pick<Job, "elapsedMs" | "createdAt" | "completedAt">): string | null {
  if (typeof job.elapsedMs === "number") return duration(job.elapsedMs / 1000);
  if (!job.completedAt || !job.createdAt) return null;
  const seconds = job.completedAt - job.createdAt; // whole seconds, from an older server
  return seconds < 1 ? "< 1 s" : duration(seconds);
}
