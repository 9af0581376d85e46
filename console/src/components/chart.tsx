// A stacked bar chart in plain SVG: one bar per time bucket, one colour per series.
import type { RefObject } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";

export interface Series {
  label: string;
  color: string;
  values: number[];
}

export const PALETTE = ["#6e6af0", "#22b8cf", "#f59f00", "#e64980", "#40c057", "#845ef7", "#fd7e14", "#868e96"];

function niceMax(value: number): number {
  if (value <= 0) return 4;
  const power = 10 ** Math.floor(Math.log10(value));
  const step = [1, 2, 2.5, 5, 10].find((s) => s * power >= value / 4)! * power;
  return Math.ceil(value / step) * step;
}

function useWidth(): [RefObject<HTMLDivElement>, number] {
  const ref = useRef<HTMLDivElement>(null);
  const [width, setWidth] = useState(640);
  useEffect(() => {
    if (!ref.current) return;
    const observer = new ResizeObserver(([entry]) => setWidth(Math.max(280, entry.contentRect.width)));
    observer.observe(ref.current);
    return () => observer.disconnect();
  }, []);
  return [ref, width];
}

export function BarChart({ labels, series, height = 260, unit = "credits" }: { labels: string[]; series: Series[]; height?: number; unit?: string }) {
  const [ref, width] = useWidth();
  const [hover, setHover] = useState<number | null>(null);
  const pad = { top: 12, right: 8, bottom: 28, left: 44 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const totals = labels.map((_, i) => series.reduce((sum, s) => sum + (s.values[i] ?? 0), 0));
  const max = niceMax(Math.max(0, ...totals));
  const slot = plotW / Math.max(1, labels.length);
  const bar = Math.max(2, Math.min(36, slot * 0.7));
  const y = (v: number) => pad.top + plotH - (v / max) * plotH;
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => f * max);
  const every = Math.ceil(labels.length / Math.max(1, Math.floor(plotW / 64)));

  return (
    <div class="chart" ref={ref}>
      <svg width={width} height={height} role="img" aria-label={`Bar chart of ${unit}`}>
        {ticks.map((t) => (
          <g key={t}>
            <line class="chart-grid" x1={pad.left} x2={width - pad.right} y1={y(t)} y2={y(t)} />
            <text class="chart-axis" x={pad.left - 8} y={y(t) + 4} text-anchor="end">
              {t >= 1000 ? `${+(t / 1000).toFixed(1)}k` : +t.toFixed(1)}
            </text>
          </g>
        ))}
        {labels.map((label, i) => {
          const x = pad.left + i * slot + (slot - bar) / 2;
          let top = pad.top + plotH;
          return (
            <g key={label} onMouseEnter={() => setHover(i)} onMouseLeave={() => setHover(null)}>
              <rect class="chart-hit" x={pad.left + i * slot} y={pad.top} width={slot} height={plotH} />
              {series.map((s) => {
                const v = s.values[i] ?? 0;
                if (!v) return null;
                const h = (v / max) * plotH;
                top -= h;
                return <rect key={s.label} x={x} y={top} width={bar} height={Math.max(1, h)} rx={Math.min(3, bar / 4)} fill={s.color} opacity={hover === null || hover === i ? 1 : 0.45} />;
              })}
              {i % every === 0 && (
                <text class="chart-axis" x={x + bar / 2} y={height - 8} text-anchor="middle">
                  {label}
                </text>
              )}
            </g>
          );
        })}
      </svg>
      {hover !== null && (
        <div class="chart-tip" style={{ left: Math.min(width - 180, Math.max(0, pad.left + hover * slot + slot / 2 - 90)) }}>
          <div class="chart-tip-title">{labels[hover]}</div>
          {series.filter((s) => s.values[hover]).map((s) => (
            <div class="chart-tip-row" key={s.label}>
              <span class="swatch" style={{ background: s.color }} />
              <span>{s.label}</span>
              <strong>{s.values[hover].toLocaleString()}</strong>
            </div>
          ))}
          <div class="chart-tip-row total">
            <span>Total</span>
            <strong>{totals[hover].toLocaleString()} {unit}</strong>
          </div>
        </div>
      )}
      {series.length > 1 && (
        <div class="chart-legend">
          {series.map((s) => (
            <span key={s.label}><span class="swatch" style={{ background: s.color }} /> {s.label}</span>
          ))}
        </div>
      )}
    </div>
  );
}
