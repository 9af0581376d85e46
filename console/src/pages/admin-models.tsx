import { useCallback, useEffect, useState } from "preact/hooks";
import { Badge, Card, ErrorBox, PageHeader, SkeletonRows } from "../components/ui";
import { api } from "../lib/api";
import { categoryLabel } from "../lib/format";
import type { ModelEvidence } from "../lib/types";

/** Where each model's id and price come from: the catalogue's evidence, for operators. Users
 * see only a plain description, on the Models page and in the playgrounds. */
export function AdminModelsPage() {
  const [rows, setRows] = useState<ModelEvidence[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const load = useCallback(() => {
    setError(null);
    api.admin.models().then((r) => setRows(r.data), setError);
  }, []);
  useEffect(load, [load]);
  const inferred = rows?.filter((r) => r.evidence === "inferred").length ?? 0;
  return (
    <div class="page">
      <PageHeader
        title="Catalogue notes"
        subtitle="Where each model id and price comes from, and the route its jobs take now (GET /admin/models). Only the admin key sees these notes; users see each model's description."
      />
      {error !== null && <ErrorBox error={error} title="Could not load the notes" onRetry={load} />}
      <Card flush title={rows ? `${rows.length} models · ${inferred} inferred ids` : "Models"}>
        {rows === null ? (
          error === null && <SkeletonRows rows={6} cols={5} />
        ) : (
          <div class="table-wrap">
            <table class="table notes-table" data-testid="notes-table">
              <thead>
                <tr><th>Model</th><th>Id</th><th>Route now</th><th>Price</th></tr>
              </thead>
              <tbody>
                {rows.map((r) => (
                  <tr key={r.id} data-model={r.id}>
                    <td>
                      <strong>{r.name}</strong>
                      <div class="muted small">{categoryLabel(r.category)}</div>
                    </td>
                    <td>
                      <code class="model-id">{r.id}</code>{" "}
                      <Badge tone={r.evidence === "inferred" ? "warning" : "success"}>{r.evidence}</Badge>
                      {r.evidenceNote && <div class="muted small">{r.evidenceNote}</div>}
                    </td>
                    <td data-testid="active-route"><Route model={r} /></td>
                    <td class="muted small">{r.priceNote || "—"}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Card>
    </div>
  );
}

/** The route a job of ``model`` would take now, and the others it may fail over to, in order. A
 * provider's route shows once the provider is configured and its circuit is not open. */
function Route({ model }: { model: ModelEvidence }) {
  const provider = !model.activeRoute.startsWith("engine:");
  const others = model.routes.filter((r) => r !== model.activeRoute);
  return (
    <>
      <code class="model-id">{model.activeRoute}</code>{" "}
      <Badge tone={provider ? "info" : "neutral"}>{provider ? "provider" : "this server"}</Badge>
      {others.length > 0 && <div class="muted small">other routes: {others.join(", ")}</div>}
    </>
  );
}
