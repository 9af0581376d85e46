import { useEffect, useRef, useState } from "preact/hooks";
import { Icon } from "../components/icons";
import { Badge, Button, Card, Empty, ErrorBox, Loading, PageHeader } from "../components/ui";
import { ApiError, openStream } from "../lib/api";
import { credits, priceLabel } from "../lib/format";
import { useSession } from "../lib/session";
import { sseEvents } from "../lib/sse";
import type { Model } from "../lib/types";

interface Message {
  role: "user" | "assistant";
  content: string;
  credits?: number;
}

interface Chunk {
  choices?: { delta?: { content?: string }; finish_reason?: string | null }[];
  creditsUsed?: number;
  error?: string;
  code?: string;
}

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

function Chat({ models, wanted }: { models: Model[]; wanted: string | null }) {
  const { refreshAccount } = useSession();
  const [modelId, setModelId] = useState(() => (models.find((m) => m.id === wanted) ?? models.find((m) => m.available) ?? models[0]).id);
  const [system, setSystem] = useState("");
  const [temperature, setTemperature] = useState(0.8);
  const [maxTokens, setMaxTokens] = useState(512);
  const [messages, setMessages] = useState<Message[]>([]);
  const [draft, setDraft] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [abort, setAbort] = useState<AbortController | null>(null);
  const log = useRef<HTMLDivElement>(null);
  const model = models.find((m) => m.id === modelId)!;

  useEffect(() => {
    log.current?.scrollTo({ top: log.current.scrollHeight });
  }, [messages]);

  const send = async (e?: Event) => {
    e?.preventDefault();
    const text = draft.trim();
    if (!text || abort) return;
    const history: Message[] = [...messages, { role: "user", content: text }];
    setMessages([...history, { role: "assistant", content: "" }]);
    setDraft("");
    setError(null);
    const controller = new AbortController();
    setAbort(controller);
    const wire = [...(system.trim() ? [{ role: "system", content: system.trim() }] : []), ...history.map(({ role, content }) => ({ role, content }))];
    const patch = (fn: (m: Message) => Message) => setMessages((all) => [...all.slice(0, -1), fn(all[all.length - 1])]);
    try {
      const stream = await openStream("POST", "/v1/chat/completions", {
        body: { model: model.id, messages: wire, stream: true, temperature, max_tokens: maxTokens },
        signal: controller.signal,
      });
      for await (const event of sseEvents(stream)) {
        if (event.data === "[DONE]") break;
        const chunk = JSON.parse(event.data) as Chunk;
        if (chunk.error) throw new ApiError(500, chunk.error, { code: chunk.code });
        const delta = chunk.choices?.[0]?.delta?.content ?? "";
        patch((m) => ({ ...m, content: m.content + delta, credits: chunk.creditsUsed ?? m.credits }));
      }
    } catch (err) {
      if (!(err instanceof DOMException && err.name === "AbortError")) {
        setError(err);
        setMessages((all) => (all[all.length - 1]?.content ? all : all.slice(0, -1)));
      }
    } finally {
      setAbort(null);
      void refreshAccount();
    }
  };

  return (
    <div class="chat-layout">
      <Card class="chat-card" flush>
        <div class="chat-log" ref={log}>
          {messages.length === 0 ? (
            <Empty icon="chat" title="Start a conversation">Messages are billed per message, by the length of the conversation: {priceLabel(model.price)}.</Empty>
          ) : (
            messages.map((m, i) => (
              <div class={`bubble ${m.role}`} key={i}>
                <div class="bubble-role">{m.role === "user" ? "You" : model.name}</div>
                <div class="bubble-text">{m.content || (abort && i === messages.length - 1 ? <span class="typing"><i /><i /><i /></span> : "")}</div>
                {m.credits !== undefined && <div class="bubble-meta">{credits(m.credits)}</div>}
              </div>
            ))
          )}
        </div>
        {error !== null && <div class="card-pad"><ErrorBox error={error} title="The chat failed" /></div>}
        <form class="composer" onSubmit={send}>
          <textarea
            class="input textarea"
            rows={2}
            placeholder="Send a message…  (Enter to send, Shift+Enter for a new line)"
            value={draft}
            onInput={(e) => setDraft(e.currentTarget.value)}
            onKeyDown={(e) => {
              if (e.key === "Enter" && !e.shiftKey) {
                e.preventDefault();
                void send();
              }
            }}
          />
          {abort ? (
            <Button icon="stop" onClick={() => abort.abort()}>Stop</Button>
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
            <span class="field-help"><Badge tone="accent">{priceLabel(model.price)}</Badge></span>
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
          <Button variant="ghost" icon="x" disabled={!messages.length || !!abort} onClick={() => { setMessages([]); setError(null); }}>
            Clear conversation
          </Button>
          <p class="muted small"><Icon name="code" size={12} /> {model.id}</p>
        </div>
      </Card>
    </div>
  );
}
