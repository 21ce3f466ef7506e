/** The tracking module's public API: the local run directory and its W&B mirror. */
import {DEFAULT_RUNS_ROOT, openRunDir} from './rundir.js'
import {syncRun, type SyncOptions, type SyncResult, type WandbDeps} from './wandb.js'

export * from './rundir.js'
export * from './rundir-lock.js'
export * from './wandb.js'
export {WandbClient, WandbRequestError, DEFAULT_WANDB_BASE_URL, runUrl, type FetchLike, type RemoteRun} from './wandb-client.js'

/** `ups sync`: finds the run (path, id or id prefix) and uploads what W&B lacks. */
export async function syncRunByRef(
  ref: string,
  options: SyncOptions & {runsRoot?: string},
  deps: WandbDeps,
): Promise<SyncResult> {
  const dir = await openRunDir(ref, options.runsRoot ?? DEFAULT_RUNS_ROOT)
  return syncRun(dir, deps, options)
}

/** What `ups sync` prints for people. */
export function renderSync(result: SyncResult): string {
  const files = result.filesSent.length === 0 ? 'none new' : `${result.filesSent.length} sent (${result.filesSent.join(', ')})`
  const end = result.exitcode === undefined ? 'still running locally (not marked finished)' : result.exitcode === 0 ? 'finished' : 'failed'
  const lines = [
    `Synced ${result.runId} to ${result.run.url}`,
    `  history: ${result.historySent} new row(s) sent, ${result.historyTotal} in total (from ${result.source === 'queue' ? 'the mirror queue' : 'history.jsonl'})`,
    `  summary: ${result.summarySent ? 'sent' : 'unchanged'}`,
    `  files:   ${files}`,
    `  state:   ${end}`,
  ]
  if (result.tornLines > 0) lines.push(`  warning: ${result.tornLines} torn or invalid history line(s) skipped`)
  return lines.join('\n')
}
