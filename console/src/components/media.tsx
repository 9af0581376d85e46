// Showing a result: <img>, <video controls>, <audio controls>, the 3D viewer for GLB, and the
// transcript for speech recognition. What a URL holds is read from its extension.
import { useEffect, useRef, useState } from "preact/hooks";
import { duration, mediaKind } from "../lib/format";
import type { Segment } from "../lib/types";
import { Icon } from "./icons";
import { Spinner } from "./ui";

export interface Output {
  urls: string[];
  text?: string;
  duration?: number;
  segments?: Segment[];
}

export function Model3D({ url }: { url: string }) {
  const host = useRef<HTMLDivElement>(null);
  const [state, setState] = useState<"loading" | "ready" | string>("loading");
  const [triangles, setTriangles] = useState<number | null>(null);
  useEffect(() => {
    let dispose: (() => void) | undefined;
    let gone = false;
    setState("loading");
    import("./viewer3d")
      .then(({ mountViewer }) => {
        if (gone || !host.current) return;
        dispose = mountViewer(host.current, url, {
          onLoad: (info) => {
            setTriangles(info.triangles);
            setState("ready");
          },
          onError: setState,
        });
      })
      .catch((err: unknown) => setState(`The 3D viewer failed to load: ${String(err)}`));
    return () => {
      gone = true;
      dispose?.();
    };
  }, [url]);
  const failed = state !== "loading" && state !== "ready";
  return (
    <div class="viewer3d" data-state={failed ? "error" : state}>
      <div class="viewer3d-canvas" ref={host} />
      {state === "loading" && (
        <div class="viewer3d-overlay">
          <Spinner /> Loading model…
        </div>
      )}
      {failed && (
        <div class="viewer3d-overlay error">
          <Icon name="cube" size={28} />
          <span>{state}</span>
        </div>
      )}
      {state === "ready" && (
        <div class="viewer3d-hint">
          Drag to orbit · scroll to zoom{triangles !== null && ` · ${triangles.toLocaleString()} triangles`}
        </div>
      )}
    </div>
  );
}

function One({ url, index }: { url: string; index: number }) {
  const kind = mediaKind(url);
  if (kind === "image") return <img class="output-image" src={url} alt={`Result ${index + 1}`} data-testid="result-image" />;
  if (kind === "video")
    return <video class="output-video" src={url} controls autoPlay muted loop playsInline data-testid="result-video" />;
  if (kind === "audio") return <audio class="output-audio" src={url} controls data-testid="result-audio" />;
  if (kind === "model") return <Model3D url={url} />;
  return (
    <a class="btn btn-secondary" href={url} target="_blank" rel="noreferrer">
      <Icon name="download" size={16} /> Download result
    </a>
  );
}

export function OutputView({ output }: { output: Output }) {
  return (
    <div class="output">
      {output.urls.map((url, i) => (
        <figure class="output-item" key={url}>
          <One url={url} index={i} />
          <figcaption>
            <a href={url} target="_blank" rel="noreferrer" class="output-link mono">
              {url.split("/").pop()}
            </a>
            <a class="icon-btn" href={url} download title="Download" aria-label="Download">
              <Icon name="download" size={16} />
            </a>
          </figcaption>
        </figure>
      ))}
      {output.text !== undefined && <Transcript text={output.text} segments={output.segments} seconds={output.duration} />}
    </div>
  );
}

function Transcript({ text, segments, seconds }: { text: string; segments?: Segment[]; seconds?: number }) {
  return (
    <div class="transcript" data-testid="transcript">
      <div class="transcript-head">
        <span>Transcript</span>
        {seconds !== undefined && <span class="muted">{duration(seconds)} of audio</span>}
      </div>
      <p>{text || <span class="muted">No speech was recognised.</span>}</p>
      {segments && segments.length > 0 && (
        <ol class="segments">
          {segments.map((s, i) => (
            <li key={i}>
              <span class="mono muted">
                {s.start.toFixed(1)}–{s.end.toFixed(1)} s
              </span>
              <span>{s.text}</span>
            </li>
          ))}
        </ol>
      )}
    </div>
  );
}
