import { useCallback, useEffect, useState } from "preact/hooks";
import { Shell } from "./components/shell";
import { Loading } from "./components/ui";
import { session as stored, unauthorized } from "./lib/api";
import { useRoute } from "./lib/router";
import { type Session, SessionProvider, signIn } from "./lib/session";
import { forgetKept } from "./lib/kept";
import { AdminKeysPage } from "./pages/admin-keys";
import { AdminModelsPage } from "./pages/admin-models";
import { AdminQueuePage } from "./pages/admin-queue";
import { AdminUsagePage } from "./pages/admin-usage";
import { BillingPage } from "./pages/billing";
import { ChatPage } from "./pages/chat";
import { JobPage } from "./pages/job";
import { JobsPage } from "./pages/jobs";
import { LoginPage } from "./pages/login";
import { ModelsPage } from "./pages/models";
import { NotFound } from "./pages/not-found";
import { PlaygroundPage } from "./pages/playground";
import type { Category } from "./lib/types";

const PLAYGROUNDS: Category[] = ["image", "image_edit", "video", "audio", "3d"];

export function App() {
  const [session, setSession] = useState<Session | null>(null);
  const [restoring, setRestoring] = useState(() => stored.key !== null);
  const [notice, setNotice] = useState<string | null>(null);

  useEffect(() => {
    const key = stored.key;
    if (!key) return;
    signIn(key)
      .then(setSession, () => stored.clear())
      .finally(() => setRestoring(false));
  }, []);

  const signOut = useCallback((message?: string) => {
    stored.clear();
    setSession(null);
    forgetKept(); // forms, results and conversations belong to the key that made them
    setNotice(message ?? null);
  }, []);

  useEffect(() => {
    const expired = () => signOut("That key is no longer valid. Sign in again.");
    unauthorized.add(expired);
    return () => void unauthorized.delete(expired);
  }, [signOut]);

  if (restoring) return <div class="boot"><Loading label="Signing in…" /></div>;
  if (!session)
    return (
      <LoginPage
        notice={notice}
        onSignedIn={(s) => {
          stored.save(s.key);
          setNotice(null);
          setSession(s);
        }}
      />
    );
  return (
    <SessionProvider session={session} onChange={setSession} signOut={() => signOut()}>
      <Shell>
        <Router admin={session.admin} />
      </Shell>
    </SessionProvider>
  );
}

function Router({ admin }: { admin: boolean }) {
  const { parts, query } = useRoute();
  const [head, arg] = parts;
  useEffect(() => window.scrollTo(0, 0), [head, arg]);
  if (!head) return <PlaygroundPage category="image" model={query.get("model")} />;
  if (head === "playground" && PLAYGROUNDS.includes(arg as Category))
    return <PlaygroundPage key={arg} category={arg as Category} model={query.get("model")} />;
  if (head === "chat") return <ChatPage model={query.get("model")} />;
  if (head === "jobs" && arg) return <JobPage key={arg} id={arg} />;
  if (head === "jobs") return <JobsPage />;
  if (head === "billing") return <BillingPage />;
  if (head === "models") return <ModelsPage />;
  if (head === "admin" && admin && arg === "keys") return <AdminKeysPage />;
  if (head === "admin" && admin && arg === "usage") return <AdminUsagePage />;
  if (head === "admin" && admin && arg === "models") return <AdminModelsPage />;
  if (head === "admin" && admin && arg === "queue") return <AdminQueuePage />;
  return <NotFound />;
}
