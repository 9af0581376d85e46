import { useCallback, useEffect, useState } from "preact/hooks";
import { Icon } from "../components/icons";
import { Boundary, Button, Card, Empty, ErrorBox, PageHeader, Progress, Segmented, SkeletonRows, StatusBadge, Time } from "../components/ui";
import { api } from "../lib/api";
import { categoryLabel, took } from "../lib/format";
import { type ShownState, shownState, useLiveJob } from "../lib/jobs";
import { href, navigate } from "../lib/router";
import { useSession } from "../lib/session";
import type { Job } from "../lib/types";

const PAGE = 25;
const REFRESH_MS = 20_000;
type Filter = "all" | ShownState;

/** Merges a fresh first page into what is shown, keeping the older pages already loaded. */
function merge(fresh: Job[], shown: Job[]): Job[] {
  const ids = new Set(fresh.map((j) => j.jobId));
  return [...fresh, ...shown.filter((j) => !ids.has(j.jobId))];
}

export function JobsPage() {
  const { refreshAccount } = useSession();
  const [jobs, setJobs] = useState<Job[] | null>(null);
  const [cursor, setCursor] = useState<string | undefined>();
  const [error, setError] = useState<unknown>(null);
  const [loadingMore, setLoadingMore] = useState(false);
  const [filter, setFilter] = useState<Filter>("all");

  const refresh = useCallback(async () => {
    try {
      const page = await api.jobs(PAGE);
      setJobs((shown) => (shown ? merge(page.data, shown) : page.data));
      setCursor((c) => c ?? page.nextCursor);
      setError(null);
    } catch (err) {
      setError(err);
    }
  }, []);

  useEffect(() => {
    void refresh();
    const tick = () => document.visibilityState === "visible" && void refresh();
    const id = setInterval(tick, REFRESH_MS);
    document.addEventListener("visibilitychange", tick);
    return () => {
      clearInterval(id);
      document.removeEventListener("visibilitychange", tick);
    };
  }, [refresh]);

  const more = async () => {
    if (!cursor) return;
    setLoadingMore(true);
    try {
      const page = await api.jobs(PAGE, cursor);
      setJobs((shown) => [...(shown ?? []), ...page.data]);
      setCursor(page.nextCursor);
    } catch (err) {
      setError(err);
    } finally {
      setLoadingMore(false);
    }
  };

  const shown = jobs?.filter((j) => filter === "all" || shownState(j) === filter) ?? null;
  return (
    <div class="page">
      <PageHeader
        title="Jobs"
        subtitle="Every generation this key submitted, newest first. Running jobs update live."
        actions={<Button icon="refresh" onClick={() => void refresh()}>Refresh</Button>}
      />
      {error !== null && <ErrorBox error={error} title="Could not load jobs" onRetry={() => void refresh()} />}
      <Card
        flush
        title={
          <Segmented<Filter>
            label="Filter by status"
            value={filter}
            onChange={setFilter}
            options={[
              { value: "all", label: "All" },
              { value: "processing", label: "Processing" },
              { value: "completed", label: "Completed" },
              { value: "failed", label: "Failed" },
              { value: "canceled", label: "Canceled" },
            ]}
          />
        }
      >
        {shown === null ? (
          <SkeletonRows rows={6} cols={6} />
        ) : shown.length === 0 ? (
          <Empty icon="activity" title={jobs?.length ? `No ${filter} jobs` : "No jobs yet"} action={!jobs?.length && <Button variant="primary" icon="sparkles" onClick={() => navigate("playground/video")}>Generate a video</Button>}>
            {jobs?.length ? "Try another filter." : "Jobs appear here as soon as you submit a generation, from this console or through the API."}
          </Empty>
        ) : (
          <div class="table-wrap">
            <table class="table jobs-table" data-testid="jobs-table">
              <thead>
                <tr>
                  <th>Status</th>
                  <th>Job</th>
                  <th class="hide-sm">Model</th>
                  <th class="hide-sm">Type</th>
                  <th class="num">Credits</th>
                  <th class="hide-sm">Created</th>
                  <th class="num hide-sm">Took</th>
                </tr>
              </thead>
              <tbody>
                {shown.map((j) => (
                  <Boundary key={j.jobId} fallback={() => <UnreadableRow id={j.jobId} />}>
                    <JobRow job={j} onEnd={() => void refreshAccount()} />
                  </Boundary>
                ))}
              </tbody>
            </table>
          </div>
        )}
        {cursor && filter === "all" && shown && shown.length > 0 && (
          <div class="table-foot">
            <Button size="sm" loading={loadingMore} onClick={more}>Load more</Button>
          </div>
        )}
      </Card>
    </div>
  );
}

/** A job this console could not draw (a field it cannot read): the rest of the list stays. */
function UnreadableRow({ id }: { id: unknown }) {
  const text = typeof id === "string" ? id : "A job";
  return (
    <tr class="unreadable" data-testid="unreadable-job">
      <td colSpan={7}>
        <span class="cell-error"><Icon name="alert" size={12} /> {text} could not be shown here.</span>{" "}
        {typeof id === "string" && <a class="mono small" href={href(`jobs/${id}`)}>Open it</a>}
      </td>
    </tr>
  );
}

function JobRow({ job: initial, onEnd }: { job: Job; onEnd: () => void }) {
  const { job, failure, retry } = useLiveJob(initial, onEnd);
  const state = shownState(job);
  const time = took(job);
  return (
    <tr class="clickable" data-job={job.jobId} data-status={job.status} data-state={state} onClick={() => navigate(`jobs/${job.jobId}`)}>
      <td>
        <div class="status-cell">
          <StatusBadge job={job} />
          {state === "processing" && failure === null && <Progress value={job.progress} indeterminate={!job.progress} />}
          {failure !== null && (
            <button type="button" class="link-btn small" title={failure instanceof Error ? failure.message : String(failure)} onClick={(e) => { e.stopPropagation(); retry(); }}>
              Status unknown · Retry
            </button>
          )}
        </div>
      </td>
      <td class="job-cell">
        <a class="mono" href={href(`jobs/${job.jobId}`)} onClick={(e) => e.stopPropagation()}>{job.jobId}</a>
        {state === "failed" && job.error && <div class="cell-error" title={job.error}><Icon name="alert" size={12} /> {job.error}</div>}
        <div class="job-cell-more show-sm muted small">
          <span class="mono">{job.model}</span> · <Time unix={job.createdAt} />{time && ` · ${time}`}
        </div>
      </td>
      <td class="mono small hide-sm">{job.model}</td>
      <td class="hide-sm">{categoryLabel(job.type)}</td>
      <td class="num">{job.creditsUsed}</td>
      <td class="hide-sm nowrap"><Time unix={job.createdAt} /></td>
      <td class="num muted hide-sm nowrap" data-testid="job-took">{time ?? "—"}</td>
    </tr>
  );
}
