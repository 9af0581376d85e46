// The wire shapes the console reads: see shared/spec/hypereal-api.md and api/routes/.

export type Category = "image" | "image_edit" | "video" | "audio" | "3d" | "chat";
export type InputType =
  | "string"
  | "integer"
  | "number"
  | "boolean"
  | "image"
  | "images"
  | "audio"
  | "video";
export type Scalar = string | number | boolean;

export interface InputSpec {
  type: InputType;
  required?: boolean;
  default?: Scalar | Scalar[] | null;
  enum?: Scalar[];
  minimum?: number;
  maximum?: number;
  max_length?: number;
  min_items?: number;
  max_items?: number;
  aliases?: string[];
  description?: string;
  /** Values a form offers (the engine's voices); unlike enum, others are accepted too. */
  choices?: Scalar[];
  /** Accepted on the wire for clients, never offered in a form. */
  hidden?: boolean;
}

export interface Multiplier {
  field: string;
  equals: Scalar;
  factor: number;
}

export interface PriceRule {
  kind: "flat" | "per_second" | "per_resolution" | "per_minute" | "per_message";
  credits: number;
  field?: string;
  per_seconds?: number;
  table?: Record<string, number>;
  chars_per_credit?: number;
  multipliers?: Multiplier[];
}

export interface Model {
  id: string;
  name: string;
  category: Category;
  description?: string;
  engine: string;
  available: boolean;
  price: PriceRule;
  /** What a request at the default settings is charged, by the server's pricing function. */
  priceAtDefaults: number;
  /** The inputs the price depends on: the form asks for a new quote when one changes. */
  priceInputs: string[];
  inputs: Record<string, InputSpec>;
}

/** GET /admin/models: where each model's id and price come from, for operators. */
export interface ModelEvidence {
  id: string;
  name: string;
  category: Category;
  evidence: "confirmed" | "inferred";
  evidenceNote: string;
  priceNote: string;
  engine: string;
  /** Where a job may be sent, in order: ``fal:fal-ai/...`` or ``engine:<name>``. */
  routes: string[];
  /** The route a job would take now (configured and its circuit not open), else the engine. */
  activeRoute: string;
}

export interface Percentiles {
  p50: number;
  p99: number;
}

/** GET /admin/queue: one model's jobs queued and running now (the Prometheus gauges'
 * numbers), and of its jobs created in the window that have ended, how long they waited and
 * ran, in seconds (null: none of them started). */
export interface ModelQueue {
  model: string;
  queued: number;
  running: number;
  finished: number;
  completed: number;
  failed: number;
  canceled: number;
  sampled: number;
  queueSeconds: Percentiles | null;
  runSeconds: Percentiles | null;
}

export interface QueueStats {
  hours: number;
  sampleLimit: number;
  data: ModelQueue[];
}

/** GET /admin/usage: credits kept against what providers reported they cost, by model. */
export interface ModelCost {
  model: string;
  jobs: number;
  completed: number;
  credits: number;
  creditsUsd: number;
  routedJobs: number;
  providerCostUsd: number | null;
}

/** GET /admin/providers: the key is masked by the server; it is never sent whole. */
export interface ProviderStatus {
  name: string;
  configured: boolean;
  keyEnv: string;
  key: string;
  baseUrl: string | null;
  circuit: "closed" | "open" | "half-open";
}

export interface Account {
  keyId: string;
  keyName: string;
  credits: number;
  rateLimit: number;
  maxRunningJobs: number;
  admin: boolean;
  maxUploadBytes: number;
  maxRequestBytes: number;
}

export type JobState = "processing" | "completed" | "failed";

export interface Segment {
  text: string;
  start: number;
  end: number;
}

export interface Job {
  jobId: string;
  status: JobState;
  model: string;
  type: string;
  creditsUsed: number;
  outputUrl?: string;
  outputUrls?: string[];
  error?: string;
  code?: string;
  progress?: number;
  queuePosition?: number;
  createdAt?: number;
  completedAt?: number;
  text?: string;
  duration?: number;
  segments?: Segment[];
  resultId?: string;
  /** Milliseconds from submit to the end (createdAt and completedAt are whole seconds). */
  elapsedMs?: number;
  /** How a chat's reply ended: stop, length, disconnect, cancelled, error. */
  finishReason?: string;
  /** The inputs the job was given; uploaded media show as "data:". */
  input?: Record<string, unknown>;
  [extra: string]: unknown;
}

export interface JobAccepted {
  jobId: string;
  status: string;
  message: string;
  creditsUsed: number;
  pollUrl: string;
}

export interface ImageResult {
  created: number;
  data: { url: string; model: string }[];
  resultId: string;
  creditsUsed: number;
}

export interface MediaResult {
  success: boolean;
  jobId?: string;
  outputUrl?: string | null;
  text?: string;
  duration?: number;
  segments?: Segment[];
  creditsUsed: number;
  [extra: string]: unknown;
}

export interface LedgerLine {
  id: number;
  kind: "grant" | "charge" | "refund";
  amount: number;
  balanceAfter: number;
  jobId: string | null;
  note: string;
  created: number;
}

export interface Delivery {
  webhookId: string;
  url: string;
  attemptedAt: number;
  statusCode: number | null;
  latencyMs: number;
  error: string | null;
}

export interface KeyInfo {
  id: string;
  name: string;
  prefix: string;
  admin: boolean;
  credits: number;
  rateLimit: number;
  maxRunningJobs: number;
  created: number;
  revoked: boolean;
}

export interface IssuedKey extends KeyInfo {
  key: string;
  webhookSecret: string;
}

export interface KeyCreate {
  name: string;
  credits: number;
  rate_limit?: number;
  max_running_jobs?: number;
  admin: boolean;
}
