// State that outlives the page showing it: a playground's form and result, a conversation.
// It is kept in memory for the tab's lifetime (until sign-out), so Chat → Jobs → Chat finds
// the conversation as it was. Writes go to the store, not to a component, so work that is
// still running when its page is left (a generation, a streamed reply) lands where the page
// will find it on return.
import { useEffect, useState } from "preact/hooks";

type Setter<T> = (next: T | ((prev: T) => T)) => void;

const values = new Map<string, unknown>();
const listeners = new Map<string, Set<() => void>>();
const setters = new Map<string, Setter<unknown>>();

function setterFor<T>(key: string): Setter<T> {
  let set = setters.get(key) as Setter<T> | undefined;
  if (!set) {
    set = (next) => {
      const prev = values.get(key) as T;
      values.set(key, typeof next === "function" ? (next as (p: T) => T)(prev) : next);
      listeners.get(key)?.forEach((fn) => fn());
    };
    setters.set(key, set as Setter<unknown>);
  }
  return set;
}

/** Like useState, under ``key`` for the tab's lifetime; the setter works after unmount too. */
export function useKept<T>(key: string, initial: T | (() => T)): [T, Setter<T>] {
  if (!values.has(key)) values.set(key, typeof initial === "function" ? (initial as () => T)() : initial);
  const shown = values.get(key) as T;
  const [, setTick] = useState(0);
  useEffect(() => {
    const rerender = () => setTick((n) => n + 1);
    const all = listeners.get(key) ?? new Set();
    listeners.set(key, all);
    all.add(rerender);
    // A write between the render and this subscription (a keystroke, say) told no one.
    if (values.get(key) !== shown) rerender();
    return () => void all.delete(rerender);
  }, [key]);
  return [shown, setterFor<T>(key)];
}

/** The value kept under ``key``, if any, read outside a component's hooks. */
export function keptValue<T>(key: string): T | undefined {
  return values.get(key) as T | undefined;
}

/** Sets ``key`` as its setter would, from anywhere: during a render, before the value is read. */
export function setKept<T>(key: string, next: T | ((prev: T) => T)): void {
  setterFor<T>(key)(next);
}

/** Drops everything kept: another key may sign in next. Call it once no page is shown. */
export function forgetKept(): void {
  values.clear();
}
