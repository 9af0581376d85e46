// Hash routes (#/jobs/job_x): the server serves one page at /console, whatever the view.
import { useEffect, useState } from "preact/hooks";

export interface Route {
  parts: string[];
  query: URLSearchParams;
}

function parse(): Route {
  const [path, search] = location.hash.replace(/^#\/?/, "").split("#")[0].split("?");
  return {
    parts: path.split("/").filter(Boolean).map(decodeURIComponent),
    query: new URLSearchParams(search ?? ""),
  };
}

export function useRoute(): Route {
  const [route, setRoute] = useState(parse);
  useEffect(() => {
    const onChange = () => setRoute(parse());
    window.addEventListener("hashchange", onChange);
    return () => window.removeEventListener("hashchange", onChange);
  }, []);
  return route;
}

export const href = (path: string): string => `#/${path}`;

export function navigate(path: string): void {
  location.hash = `/${path}`;
}
