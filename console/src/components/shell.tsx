import type { ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";
import { credits, dollars } from "../lib/format";
import { href, useRoute } from "../lib/router";
import { useSession } from "../lib/session";
import { Icon, type IconName, Logo } from "./icons";

interface NavItem {
  path: string;
  label: string;
  icon: IconName;
}

const CREATE: NavItem[] = [
  { path: "playground/image", label: "Image", icon: "image" },
  { path: "playground/image_edit", label: "Image edit", icon: "wand" },
  { path: "playground/video", label: "Video", icon: "video" },
  { path: "playground/audio", label: "Audio", icon: "audio" },
  { path: "playground/3d", label: "3D", icon: "cube" },
  { path: "chat", label: "Chat", icon: "chat" },
];

const MANAGE: NavItem[] = [
  { path: "jobs", label: "Jobs", icon: "activity" },
  { path: "billing", label: "Credits & ledger", icon: "wallet" },
  { path: "models", label: "Models", icon: "layers" },
];

const ADMIN: NavItem[] = [
  { path: "admin/keys", label: "API keys", icon: "key" },
  { path: "admin/usage", label: "Usage", icon: "chart" },
  { path: "admin/queue", label: "Queue & costs", icon: "gauge" },
  { path: "admin/models", label: "Catalogue notes", icon: "layers" },
];

function useTheme(): [string, () => void] {
  const [theme, setTheme] = useState(document.documentElement.dataset.theme ?? "light");
  const toggle = () => {
    const next = theme === "dark" ? "light" : "dark";
    document.documentElement.dataset.theme = next;
    localStorage.setItem("hyperlocal.theme", next);
    setTheme(next);
  };
  return [theme, toggle];
}

export function Shell({ children }: { children: ComponentChildren }) {
  const { session, catalogue, signOut } = useSession();
  const { parts } = useRoute();
  const current = parts.join("/") || "playground/image";
  const [open, setOpen] = useState(false);
  const [theme, toggleTheme] = useTheme();
  useEffect(() => setOpen(false), [current]);
  const hasChat = catalogue.models?.some((m) => m.category === "chat") ?? true;
  const create = CREATE.filter((i) => i.path !== "chat" || hasChat);

  const link = (item: NavItem) => {
    const active = current === item.path || current.startsWith(`${item.path}/`);
    return (
      <a href={href(item.path)} class={`nav-link ${active ? "active" : ""}`} aria-current={active ? "page" : undefined} key={item.path}>
        <Icon name={item.icon} size={17} />
        <span>{item.label}</span>
      </a>
    );
  };

  return (
    <div class={`shell ${open ? "nav-open" : ""}`}>
      <aside class="sidebar" aria-label="Main navigation">
        <a class="brand" href={href("playground/image")}>
          <Logo size={28} />
          <span class="brand-name">hyperlocal</span>
          <span class="brand-tag">console</span>
        </a>
        <nav class="nav">
          <div class="nav-group">
            <div class="nav-heading">Playground</div>
            {create.map(link)}
          </div>
          <div class="nav-group">
            <div class="nav-heading">Account</div>
            {MANAGE.map(link)}
          </div>
          {session.admin && (
            <div class="nav-group">
              <div class="nav-heading">Admin</div>
              {ADMIN.map(link)}
            </div>
          )}
        </nav>
        <div class="sidebar-foot">
          <a class="account-card" href={href("billing")} title="Credits and ledger">
            <div class="account-name">
              <span class="avatar">{session.account.keyName.slice(0, 1).toUpperCase()}</span>
              <div>
                <div class="account-key" data-testid="key-name">{session.account.keyName}</div>
                <div class="account-id mono">{session.account.keyId}</div>
              </div>
              {session.admin && <span class="badge badge-accent">admin</span>}
            </div>
            <div class="account-credits">
              <Icon name="coins" size={16} />
              <span data-testid="credits">{credits(session.account.credits)}</span>
              <span class="muted">≈ {dollars(session.account.credits)}</span>
            </div>
          </a>
          <div class="sidebar-actions">
            <button class="icon-btn" onClick={toggleTheme} aria-label="Toggle dark mode" title="Toggle dark mode">
              <Icon name={theme === "dark" ? "sun" : "moon"} />
            </button>
            <a class="icon-btn" href="/docs" target="_blank" rel="noreferrer" title="API reference" aria-label="API reference">
              <Icon name="code" />
            </a>
            <button class="btn btn-ghost btn-sm" onClick={signOut}>
              <Icon name="logout" size={15} /> Sign out
            </button>
          </div>
        </div>
      </aside>
      <div class="scrim" onClick={() => setOpen(false)} />
      <div class="main">
        <header class="topbar">
          <button class="icon-btn" onClick={() => setOpen(!open)} aria-label="Open navigation">
            <Icon name="menu" />
          </button>
          <a class="brand" href={href("playground/image")}>
            <Logo size={24} />
            <span class="brand-name">hyperlocal</span>
          </a>
          <span class="topbar-credits">
            <Icon name="coins" size={15} /> {session.account.credits.toLocaleString()}
          </span>
        </header>
        <main class="content">{children}</main>
      </div>
    </div>
  );
}
