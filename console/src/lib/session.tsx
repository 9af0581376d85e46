// The signed-in key, its account, whether it is the admin key, and the catalogue: loaded once
// at sign-in and shared by every page.
import { createContext, type ComponentChildren } from "preact";
import { useCallback, useContext, useEffect, useState } from "preact/hooks";
import { api } from "./api";
import type { Account, Model } from "./types";

export interface Session {
  key: string;
  account: Account;
  admin: boolean;
}

export interface Catalogue {
  models: Model[] | null;
  error: unknown;
  reload: () => void;
}

interface SessionContext {
  session: Session;
  catalogue: Catalogue;
  refreshAccount: () => Promise<void>;
  signOut: () => void;
}

/** Checks ``key`` with GET /v1/account, which also says whether it is the admin key. */
export async function signIn(key: string): Promise<Session> {
  const account = await api.account(key);
  return { key, account, admin: account.admin };
}

const Ctx = createContext<SessionContext | null>(null);

export function useSession(): SessionContext {
  const ctx = useContext(Ctx);
  if (!ctx) throw new Error("useSession outside SessionProvider");
  return ctx;
}

export function SessionProvider(props: {
  session: Session;
  onChange: (s: Session) => void;
  signOut: () => void;
  children: ComponentChildren;
}) {
  const { session, onChange } = props;
  const [models, setModels] = useState<Model[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const load = useCallback(() => {
    setError(null);
    api.models().then((r) => setModels(r.data), setError);
  }, []);
  useEffect(load, [load]);
  const refreshAccount = useCallback(async () => {
    try {
      onChange({ ...session, account: await api.account() });
    } catch {
      /* the next page load shows the error; a stale balance is harmless */
    }
  }, [session, onChange]);
  const value: SessionContext = {
    session,
    catalogue: { models, error, reload: load },
    refreshAccount,
    signOut: props.signOut,
  };
  return <Ctx.Provider value={value}>{props.children}</Ctx.Provider>;
}
