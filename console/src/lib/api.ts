// The one place the console talks to the server: same origin, `Authorization: Bearer <key>`,
// JSON in and out. Every error the API answers carries a string `error`; ApiError keeps it
// verbatim so the page can show the wire text.

import type {
  Account,
  Category,
  Delivery,
  ImageResult,
  IssuedKey,
  Job,
  JobAccepted,
  KeyCreate,
  KeyInfo,
  LedgerLine,
  MediaResult,
  Model,
  ModelCost,
  ModelEvidence,
  ProviderStatus,
  QueueStats,
} from "./types";

const STORAGE_KEY = "hyperlocal.apiKey";

export const session = {
  get key(): string | null {
    return sessionStorage.getItem(STORAGE_KEY);
  },
  save(key: string): void {
    sessionStorage.setItem(STORAGE_KEY, key);
  },
  clear(): void {
    sessionStorage.removeItem(STORAGE_KEY);
  },
};

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly body: Record<string, unknown> = {},
    readonly retryAfter: string | null = null,
  ) {
    super(message);
    this.name = "ApiError";
  }

  get code(): string | undefined {
    return typeof this.body.code === "string" ? this.body.code : undefined;
  }

  /** A second line from the error's extra fields (402, 413, 429), or undefined. */
  get detail(): string | undefined {
    const b = this.body;
    if (this.status === 402 && typeof b.required === "number")
      return `This costs ${b.required} credits; the key has ${b.available}.`;
    if (this.status === 429)
      return `Limit: ${b.limit ?? "?"} requests per ${b.window ?? "hour"}.` +
        (this.retryAfter ? ` Retry in ${this.retryAfter} s.` : "");
    if (this.status === 413 && typeof b.limit === "number")
      return `The limit is ${(b.limit / 1e6).toFixed(0)} MB per request.`;
    return undefined;
  }
}

/** Listeners run when an authenticated call answers 401: the stored key no longer works. */
export const unauthorized = new Set<() => void>();

interface Options {
  body?: unknown;
  key?: string;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

function headersFor(opts: Options, accept = "application/json"): Record<string, string> {
  const headers: Record<string, string> = { Accept: accept, ...opts.headers };
  const key = opts.key ?? session.key;
  if (key) headers.Authorization = `Bearer ${key}`;
  if (opts.body !== undefined) headers["Content-Type"] = "application/json";
  return headers;
}

async function send(method: string, path: string, opts: Options, accept?: string): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      headers: headersFor(opts, accept),
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      signal: opts.signal,
    });
  } catch (err) {
    if (err instanceof DOMException && err.name === "AbortError") throw err;
    throw new ApiError(0, "The server could not be reached. Is hyperlocal running?");
  }
  if (!response.ok) throw await errorOf(response, opts);
  return response;
}

async function errorOf(response: Response, opts: Options): Promise<ApiError> {
  let body: Record<string, unknown> = {};
  try {
    body = (await response.json()) as Record<string, unknown>;
  } catch {
    /* not JSON: fall back to the status line */
  }
  const message =
    typeof body.error === "string" ? body.error : `HTTP ${response.status} ${response.statusText}`;
  if (response.status === 401 && opts.key === undefined) unauthorized.forEach((fn) => fn());
  return new ApiError(response.status, message, body, response.headers.get("Retry-After"));
}

async function request<T>(method: string, path: string, opts: Options = {}): Promise<T> {
  const response = await send(method, path, opts);
  return (await response.json()) as T;
}

/** Opens a Server-Sent Events response; errors before the stream starts are ApiErrors. */
export async function openStream(
  method: string,
  path: string,
  opts: Options = {},
): Promise<ReadableStream<Uint8Array>> {
  const response = await send(method, path, opts, "text/event-stream");
  if (!response.body) throw new ApiError(0, "The browser gave no response stream.");
  return response.body;
}

const q = (params: Record<string, string | number | undefined>): string => {
  const search = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined) search.set(k, String(v));
  const text = search.toString();
  return text ? `?${text}` : "";
};

const MEDIA_PATHS: Partial<Record<Category, string>> = {
  video: "/v1/videos/generate",
  audio: "/v1/audio/generate",
  "3d": "/v1/3d/generate",
};

export const api = {
  account: (key?: string) => request<Account>("GET", "/v1/account", { key }),
  ledger: (limit: number, before?: number) =>
    request<{ data: LedgerLine[] }>("GET", `/v1/account/ledger${q({ limit, before })}`),
  models: () => request<{ data: Model[] }>("GET", "/v1/models"),
  /** What a request with ``input`` would be charged: the server prices it as the submit does. */
  quote: (model: string, input: Record<string, unknown>, signal?: AbortSignal) =>
    request<{ model: string; credits: number }>(
      "POST",
      `/v1/models/${encodeURIComponent(model)}/quote`,
      { body: { input }, signal },
    ),
  jobs: (limit: number, cursor?: string) =>
    request<{ data: Job[]; nextCursor?: string }>("GET", `/v1/jobs${q({ limit, cursor })}`),
  job: (id: string, signal?: AbortSignal) =>
    request<Job>("GET", `/v1/jobs/${encodeURIComponent(id)}`, { signal }),
  cancel: (id: string) => request<Job>("POST", `/v1/jobs/${encodeURIComponent(id)}/cancel`),
  deliveries: (id: string) =>
    request<{ data: Delivery[] }>("GET", `/v1/jobs/${encodeURIComponent(id)}/deliveries`),
  replay: (id: string) =>
    request<{ scheduled: number }>("POST", `/v1/jobs/${encodeURIComponent(id)}/deliveries/replay`),

  /** Images answer synchronously (a job, 202, when a webhook is given), in the flat shape. */
  image: (category: "image" | "image_edit", model: string, input: Record<string, unknown>, webhook_url?: string) =>
    request<ImageResult | JobAccepted>(
      "POST",
      category === "image" ? "/v1/images/generate" : "/v1/images/edit",
      { body: { model, ...input, webhook_url } },
    ),
  /** Video, audio and 3D become jobs (`Prefer: respond-async`), so their progress can stream. */
  media: (category: Category, model: string, input: Record<string, unknown>, webhook_url?: string) =>
    request<JobAccepted | MediaResult>("POST", MEDIA_PATHS[category] ?? "/v1/videos/generate", {
      body: { model, input, webhook_url },
      headers: { Prefer: "respond-async" },
    }),

  admin: {
    keys: () => request<{ data: KeyInfo[] }>("GET", "/admin/keys"),
    models: () => request<{ data: ModelEvidence[] }>("GET", "/admin/models"),
    queue: (hours: number) => request<QueueStats>("GET", `/admin/queue${q({ hours })}`),
    usage: (hours: number) =>
      request<{ hours: number; data: ModelCost[] }>("GET", `/admin/usage${q({ hours })}`),
    providers: () => request<{ data: ProviderStatus[] }>("GET", "/admin/providers"),
    create: (body: KeyCreate) => request<IssuedKey>("POST", "/admin/keys", { body }),
    revoke: (id: string) =>
      request<KeyInfo>("POST", `/admin/keys/${encodeURIComponent(id)}/revoke`),
    grant: (id: string, credits: number, note: string) =>
      request<KeyInfo>("POST", `/admin/keys/${encodeURIComponent(id)}/credits`, {
        body: { credits, note },
      }),
    ledger: (id: string, limit = 500) =>
      request<{ data: LedgerLine[] }>(
        "GET",
        `/admin/keys/${encodeURIComponent(id)}/ledger${q({ limit })}`,
      ),
  },
};

/** What to show for any thrown value: the wire `error` for API errors. */
export function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
