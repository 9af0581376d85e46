import { useEffect, useRef } from "preact/hooks";
import { Icon } from "../components/icons";
import { Badge, Button, Card, Empty, ErrorBox, Loading, PageHeader } from "../components/ui";
import { ApiError, api, openStream } from "../lib/api";
import { credits, priceLabel } from "../lib/format";
import { useKept } from "../lib/kept";
import { useSession } from "../lib/session";
import { sseEvents } from "../lib/sse";
import type { Model } from "../lib/types";

interface Message {
  role: "user" | "assistant";
  content: string;
  credits?: number;
  /** The reader stopped the reply before its end. */
  stopped?: boolean;
}

interface Chunk {
  id?: string;
  choices?: { delta?: { content?: string }; finish_reason?: string | null }[];
  creditsUsed?: number;
  error?: string;
  code?: string;
}

/** The reply being streamed: its chat id (which is its job id) once the first chunk names it. */
interface Streaming {
  controller: AbortController;
  id: string | null;
  sent: number;
  stopping: boolean;
}

// If a cancelled reply's stream has not ended this long after the cancel, it is cut.
const STOP_GRACE_MS = 5000;

export function ChatPage({ model }: { model: string | null }) {
  const { catalogue } = useSession();
  const models = catalogue.models?.filter((m) => m.category === "chat") ?? null;
  let body;
  if (catalogue.error) body = <ErrorBox error={catalogue.error} onRetry={catalogue.reload} />;
  else if (!models) body = <Loading />;
  else if (!models.length) body = <Card><Empty icon="chat" title="No chat models">This server's catalogue has no chat models.</Empty></Card>;
  else body = <Chat models={models} wanted={model} />;
  return (
    <div class="page">
      <PageHeader title="Chat" subtitle="OpenAI-compatible chat completions (POST /v1/chat/completions), streamed token by token." />
      {body}
    </div>
  );
}

/** The credits of a reply cut off before its first chunk named it: the newest chat job on
 * this model since it was sent (the server charged it, and recorded it as cut short). */
async function chargedFor(model: string, sent: number): Promise<number | undefined> {
  const recent = await api.jobs(10);
  return recent.data.find((j) => j.type === "chat" && j.model === model && (j.createdAt ?? 0) >= Math.floor(sent / 1000) - 1)?.creditsUsed;
}

function Chat({ models, wanted }: { models: Model[]; wanted: string | null }) {
  const { refreshAccount } = useSession();
  const [modelId, setModelId] = useKept("chat:model", () => (models.find((m) => m.id === wanted) ?? models.find((m) => m.available) ?? models[0]).id);
  const [system, setSystem] = useKept("chat:system", "");
  const [temperature, setTemperature] = useKept("chat:temperature", 0.8);
  const [maxTokens, setMaxTokens] = useKept("chat:max-tokens", 512);
  const [messages, setMessages] = useKept<Message[]>("chat:messages", []);
  const [draft, setDraft] = useKept("chat:draft", "");
  const [error, setError] = useKept<unknown>("chat:error", null);
  const [streaming, setStreaming] = useKept<Streaming | null>("chat:streaming", null);
  const log = useRef<HTMLDivElement>(null);
  const model = models.find((m) => m.id === modelId) ?? models[0];

  useEffect(() => {
    if (wanted && models.some((m) => m.id === wanted)) setModelId(wanted);
  }, [wanted]);

  useEffect(() => {
    log.current?.scrollTo({ top: log.current.scrollHeight });
  }, [messages]);

  const patch = (fn: (m: Message) => Message) => setMessages((all) => [...all.slice(0, -1), fn(all[all.length - 1])]);

  const send = async (e?: Event) => {
    e?.preventDefault();
    const text = draft.trim();
    if (!text || streaming) return;
    const history: Message[] = [...messages, { role: "user", content: text }];
    setMessages([...history, { role: "assistant", content: "" }]);
    setDraft("");
    setError(null);
    const controller = new AbortController();
    const sent = Date.now();
    setStreaming({ controller, id: null, sent, stopping: false });
    const wire = [...(system.trim() ? [{ role: "system", content: system.trim() }] : []), ...history.map(({ role, content }) => ({ role, content }))];
    try {
      const stream = await openStream("POST", "/v1/chat/completions", {
        body: { model: model.id, messages: wire, stream: true, temperature, max_tokens: maxTokens },
        signal: controller.signal,
      });
      for await (const event of sseEvents(stream)) {
        if (event.data === "[DONE]") break;
        const chunk = JSON.parse(event.data) as Chunk;
        if (chunk.error) throw new ApiError(500, chunk.error, { code: chunk.code });
        if (chunk.id) named(chunk.id);
        const choice = chunk.choices?.[0];
        const delta = choice?.delta?.content ?? "";
        const cancelled = choice?.finish_reason === "cancelled";
        patch((m) => ({ ...m, content: m.content + delta, credits: chunk.creditsUsed ?? m.credits, stopped: m.stopped || cancelled }));
      }
    } catch (err) {
      if (err instanceof DOMException && err.name === "AbortError") {
        patch((m) => ({ ...m, stopped: true }));
        const charged = await chargedFor(model.id, sent).catch(() => undefined);
        if (charged !== undefined) patch((m) => ({ ...m, credits: m.credits ?? charged }));
      } else {
        setError(err);
        setMessages((all) => (all[all.length - 1]?.content ? all : all.slice(0, -1)));
      }
    } finally {
      setStreaming(null);
      void refreshAccount();
    }
  };

  /** The reply's id is known: a stop pressed before it arrived is sent now. */
  const named = (id: string) => {
    const was: { stopping?: Streaming } = {};
    setStreaming((s) => {
      if (!s || s.id) return s;
      if (s.stopping) was.stopping = s;
      return { ...s, id };
    });
    if (was.stopping) cancel(was.stopping, id);
  };

  /** Stopping cancels the chat's job (spec §12): the stream ends at once with a last chunk
   * that says so and carries the credits, which stand because tokens were delivered. */
  const cancel = (s: Streaming, id: string) => {
    api.cancel(id).catch(() => s.controller.abort());
    setTimeout(() => s.controller.abort(), STOP_GRACE_MS);
  };

  const stop = () => {
    if (!streaming || streaming.stopping) return;
    setStreaming({ ...streaming, stopping: true });
    if (streaming.id) cancel(streaming, streaming.id);
    else streaming.controller.abort(); // nothing came back yet: there is nothing to keep
  };

  return (
    <div class="chat-layout">
      <Card class="chat-card" flush>
        <div class="chat-log" ref={log}>
          {messages.length === 0 ? (
            <Empty icon="chat" title="Start a conversation">Messages are billed per message, by the length of the conversation: {priceLabel(model)}.</Empty>
          ) : (
            messages.map((m, i) => (
              <div class={`bubble ${m.role}`} key={i}>
                <div class="bubble-role">{m.role === "user" ? "You" : model.name}</div>
                <div class="bubble-text">{m.content || (streaming && i === messages.length - 1 ? <span class="typing"><i /><i /><i /></span> : "")}</div>
                {(m.credits !== undefined || m.stopped) && (
                  <div class="bubble-meta">
                    {m.credits !== undefined && credits(m.credits)}
                    {m.stopped && <span class="bubble-stopped" title="You stopped this reply before its end">stopped</span>}
                  </div>
                )}
              </div>
            ))
          )}
        </div>
        {error !== null && <div class="card-pad"><ErrorBox error={error} title="The chat failed" /></div>}
        <form class="composer" onSubmit={send}>
          <textarea
            class="input textarea"
            rows={2}
            aria-label="Message"
            placeholder="Send a message…"
            title="Enter sends; Shift+Enter starts a new line"
            value={draft}
            onInput={(e) => setDraft(e.currentTarget.value)}
            onKeyDown={(e) => {
              if (e.key === "Enter" && !e.shiftKey) {
                e.preventDefault();
                void send();
              }
            }}
          />
          {streaming ? (
            <Button icon="stop" loading={streaming.stopping} onClick={stop}>Stop</Button>
          ) : (
            <Button type="submit" variant="primary" icon="send" disabled={!draft.trim() || !model.available}>Send</Button>
          )}
        </form>
      </Card>
      <Card title="Settings" class="chat-settings">
        <div class="form-stack">
          <label class="field">
            <span class="field-label">Model</span>
            <select class="input select" value={modelId} onChange={(e) => setModelId(e.currentTarget.value)}>
              {models.map((m) => (
                <option value={m.id} key={m.id} disabled={!m.available}>{m.name}{m.available ? "" : " (not installed)"}</option>
              ))}
            </select>
            <span class="field-help"><Badge tone="accent">{priceLabel(model)}</Badge> a message</span>
          </label>
          <label class="field">
            <span class="field-label">System prompt</span>
            <textarea class="input textarea" rows={3} placeholder="You are a helpful assistant." value={system} onInput={(e) => setSystem(e.currentTarget.value)} />
          </label>
          <label class="field">
            <span class="field-label">Temperature <span class="mono muted">{temperature.toFixed(1)}</span></span>
            <input type="range" min={0} max={2} step={0.1} value={temperature} onInput={(e) => setTemperature(Number(e.currentTarget.value))} />
          </label>
          <label class="field">
            <span class="field-label">Max tokens</span>
            <input class="input" type="number" min={1} max={4096} value={maxTokens} onInput={(e) => setMaxTokens(Number(e.currentTarget.value))} />
          </label>
          <Button variant="ghost" icon="x" disabled={!messages.length || !!streaming} onClick={() => { setMessages([]); setError(null); }}>
            Clear conversation
          </Button>
          <p class="muted small"><Icon name="code" size={12} /> {model.id}</p>
        </div>
      </Card>
    </div>
  );
}
