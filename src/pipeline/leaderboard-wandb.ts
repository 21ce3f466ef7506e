/**
 * `ups run --leaderboard-wandb`: publishes this run's leaderboard row to W&B as its own run
 * (job_type `leaderboard`, one per leaderboard update): summary = the row (numbers as numbers),
 * config = run id, label, config hash, tags, and the leaderboard CSV/HTML uploaded as files.
 * Nothing goes over the network when W&B is off (WANDB_MODE offline/disabled, no key, no
 * project); a failure is reported, never thrown: the CSV stays the record.
 */
import {readFile} from 'node:fs/promises'
import {basename} from 'node:path'

import {wandbInactiveReason, type WandbDeps} from '../tracking/wandb.js'
import {runUrl, SUMMARY_FILE, wrapConfig} from '../tracking/wandb-client.js'
import {baseUrlOf, clientFor} from '../tracking/wandb-upload.js'
import {redactSecrets} from '../util/secrets.js'

export interface LeaderboardWandbTarget {
  project?: string
  entity?: string
}

export interface LeaderboardWandbOutcome {
  sent: boolean
  /** One line for the step detail: where it went, why nothing was sent, or what failed. */
  detail: string
  url?: string
  name?: string
}

const NUMBER = /^-?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i

/** The row as a W&B summary: numeric cells as numbers, booleans as booleans, the rest as text. */
export function leaderboardSummary(row: Record<string, string>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(row)) {
    if (v === '') continue
    out[k] = NUMBER.test(v) ? Number(v) : v === 'true' || v === 'false' ? v === 'true' : v
  }
  return out
}

/**
 * One W&B run per call, named `leaderboard-<run id>-<time>` so every update is kept.
 * `files`: the leaderboard CSV/HTML (missing ones are skipped).
 */
export async function publishLeaderboardRow(
  row: Record<string, string>,
  files: string[],
  target: LeaderboardWandbTarget,
  deps: WandbDeps,
): Promise<LeaderboardWandbOutcome> {
  const inactive = wandbInactiveReason({enabled: true, project: target.project}, deps.env)
  if (inactive) return {sent: false, detail: `W&B leaderboard not sent: ${inactive.replace('logging.wandb.project is not set', 'no project (--leaderboard-wandb-project or logging.wandb.project)')}`}
  const runId = row.run_id ?? 'run'
  const stamp = deps.now().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')
  const name = `leaderboard-${runId}-${stamp}`.replace(/[^A-Za-z0-9_.-]/g, '-')
  const summary = {...leaderboardSummary(row), champion: row.label === 'champion'}
  try {
    const client = clientFor(deps)
    const run = await client.upsertRun({
      name,
      project: target.project!,
      entity: target.entity,
      displayName: `leaderboard ${row.label ?? ''} ${runId}`.replace(/\s+/g, ' ').trim(),
      jobType: 'leaderboard',
      tags: ['leaderboard', ...(row.label ? [row.label] : [])],
      config: wrapConfig({run_id: runId, label: row.label ?? null, config_hash: row.config_hash ?? null, tags: row.tags ?? null}),
      summaryMetrics: JSON.stringify(summary),
    })
    // The summary as the SDK sends it: the file stream's summary file.
    await client.fileStream(run.entity, run.project, run.name, {files: {[SUMMARY_FILE]: {offset: 0, content: [JSON.stringify(summary)]}}})
    const present: Array<{name: string; data: Buffer}> = []
    for (const f of files) {
      const data = await readFile(f).catch(() => undefined)
      if (data) present.push({name: basename(f), data})
    }
    if (present.length > 0) {
      const up = await client.createRunFiles(run.entity, run.project, run.name, present.map((p) => p.name))
      for (const p of present) {
        const slot = up.files.find((x) => x.name === p.name)
        if (slot) await client.uploadFile(slot.uploadUrl, p.data, up.uploadHeaders)
      }
      await client.fileStream(run.entity, run.project, run.name, {uploaded: present.map((p) => p.name)})
    }
    await client.fileStream(run.entity, run.project, run.name, {complete: true, exitcode: 0})
    const url = runUrl(baseUrlOf(deps.env), run.entity, run.project, run.name)
    return {sent: true, name, url, detail: `W&B leaderboard run ${run.entity}/${run.project}/${run.name} (${present.length} file(s))`}
  } catch (error) {
    return {sent: false, name, detail: `W&B leaderboard not sent: ${redactSecrets((error as Error).message ?? String(error))}`}
  }
}
