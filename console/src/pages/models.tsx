import { useEffect, useState } from "preact/hooks";
import { Badge, Button, Card, ErrorBox, Loading, PageHeader } from "../components/ui";
import { CATEGORIES, priceLabel } from "../lib/format";
import { navigate } from "../lib/router";
import { useSession } from "../lib/session";
import type { Model } from "../lib/types";

export function ModelsPage() {
  const { catalogue } = useSession();
  const [query, setQuery] = useState("");
  useEffect(() => {
    const id = location.hash.split("#")[2];
    if (id && catalogue.models) document.getElementById(`model-${id}`)?.scrollIntoView({ block: "center" });
  }, [catalogue.models]);
  if (catalogue.error) return <div class="page"><ErrorBox error={catalogue.error} onRetry={catalogue.reload} /></div>;
  if (!catalogue.models) return <div class="page"><Loading label="Loading the catalogue…" /></div>;
  const q = query.trim().toLowerCase();
  const match = (m: Model) => !q || m.id.includes(q) || m.name.toLowerCase().includes(q) || m.engine.includes(q);
  const total = catalogue.models.length;
  const ready = catalogue.models.filter((m) => m.available).length;
  return (
    <div class="page">
      <PageHeader
        title="Models"
        subtitle={`${total} models in this server's catalogue; ${ready} have their engine installed.`}
        actions={<input class="input search" type="search" placeholder="Search models…" value={query} onInput={(e) => setQuery(e.currentTarget.value)} />}
      />
      {CATEGORIES.map((c) => {
        const models = catalogue.models!.filter((m) => m.category === c.id && match(m));
        if (!models.length) return null;
        return (
          <section class="model-section" key={c.id}>
            <h2 class="section-title">{c.label} <span class="muted">{models.length}</span></h2>
            <div class="model-grid">
              {models.map((m) => (
                <Card class="model-card" key={m.id} id={`model-${m.id}`}>
                  <div class="model-card-head">
                    <div>
                      <div class="model-name">{m.name}</div>
                      <code class="model-id">{m.id}</code>
                    </div>
                    <Badge tone="accent">{priceLabel(m)}</Badge>
                  </div>
                  {m.description && <p class="muted small">{m.description}</p>}
                  <div class="chips">
                    {Object.entries(m.inputs).filter(([, spec]) => !spec.hidden).map(([name, spec]) => (
                      <span class={`chip small ${spec.required ? "chip-strong" : ""}`} key={name} title={`${spec.type}${spec.required ? ", required" : ""}`}>{name}</span>
                    ))}
                  </div>
                  <div class="model-card-foot">
                    {m.available ? <Badge tone="success" dot>Ready</Badge> : <Badge tone="warning" dot>{m.engine} not installed</Badge>}
                    <Button size="sm" variant="ghost" disabled={!m.available} onClick={() => navigate(c.id === "chat" ? `chat?model=${m.id}` : `playground/${c.id}?model=${m.id}`)}>
                      Try it →
                    </Button>
                  </div>
                </Card>
              ))}
            </div>
          </section>
        );
      })}
    </div>
  );
}
