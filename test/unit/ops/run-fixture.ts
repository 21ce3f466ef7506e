/** A recorded run directory for the ops tests: several stages, a NaN, eval results, logs. */
import {mkdir, writeFile} from 'node:fs/promises'
import {join} from 'node:path'

import {createRunDir, updateMetadata, type RunDir} from '../../../src/tracking/rundir.js'

export const RUN_ID = 'run_20250301_100000_ab12'
export const START = Date.parse('2025-03-01T10:00:00Z')

export const RUN_CONFIG = {
  training: {batch_size: 12, accum_steps: 4},
  stages: {
    operator: {epochs: 20, optimizer: {name: 'adamw', lr: 0.001}},
    diff_residual: {epochs: 8, optimizer: {name: 'adamw', lr: 5e-5}},
  },
  logging: {wandb: {enabled: true, project: 'ups-test', entity: 'mock-entity'}},
}

export interface HistoryLine {
  step: number
  time: string
  metrics: Record<string, number | string | null>
}

/**
 * Operator: 20 epochs, loss 1.0 -> ~0.02 and still falling, one grad-norm spike of 3.5 (critical);
 * diff_residual: 8 epochs, loss 0.2 -> 0.17 (poor), a NaN loss at epoch 4 (logged as null, as
 * JSON.stringify writes NaN) and a NaN grad norm.
 */
export function recordedHistory(): HistoryLine[] {
  const rows: HistoryLine[] = []
  let step = 0
  const t = (s: number) => new Date(START + s * 60_000).toISOString()
  for (let e = 0; e < 20; e++) {
    step += 10
    const loss = 1.0 * Math.pow(0.82, e)
    rows.push({
      step,
      time: t(step),
      metrics: {
        global_step: step,
        'operator/loss': loss,
        'operator/val_loss': loss * 1.1,
        'operator/grad_norm': e === 5 ? 3.5 : 0.1 - e * 0.002,
        'operator/lr': 0.001 * (1 - e / 20),
        'operator/epoch': e,
        'operator/epoch_time_sec': 30 + (e % 3),
        'operator/samples_per_sec': 400,
        'system/gpu.0.gpu': 85,
      },
    })
  }
  for (let e = 0; e < 8; e++) {
    step += 10
    rows.push({
      step,
      time: t(step),
      metrics: {
        global_step: step,
        'diff_residual/loss': e === 4 ? null : 0.2 - e * 0.004,
        'diff_residual/grad_norm': e === 4 ? 'NaN' : 0.3,
        'diff_residual/lr': 5e-5,
        'diff_residual/epoch_time_sec': 12,
        'system/gpu.0.gpu': 75,
      },
    })
  }
  return rows
}

export const EVAL_SMALL = {
  metrics: {nrmse: 0.08, mse: 0.0004, conservation_gap: 0.2},
  baselines: {persistence: {nrmse: 0.3, mse: 0.01}, linear: {nrmse: 0.05}},
}
export const EVAL_FULL = {metrics: {nrmse: 0.09, rel_l2: 0.1}}

export const LEADERBOARD = [
  'run_id,timestamp,label,metric:nrmse,metric:rel_l2',
  'run_20250201_000000_0001,2025-02-01T00:00:00,baseline-a,0.12,0.2',
  'run_20250215_000000_0002,2025-02-15T00:00:00,"champion, v2",0.07,0.09',
  `${RUN_ID},2025-03-01T12:00:00,this,0.08,0.1`,
].join('\n') + '\n'

/** Writes the recorded run under root (artifacts/runs layout) and returns it. */
export async function writeRecordedRun(root: string, options: {runId?: string; withLogs?: string} = {}): Promise<RunDir> {
  const dir = await createRunDir(root, options.runId ?? RUN_ID, {config: RUN_CONFIG, now: new Date(START)})
  await updateMetadata(dir, {status: 'finished', config: 'configs/train_burgers_32dim.yaml', config_hash: 'abc123', started_at: new Date(START).toISOString(), finished_at: new Date(START + 290 * 60_000).toISOString()})
  await writeFile(dir.paths.history, recordedHistory().map((r) => JSON.stringify(r)).join('\n') + '\n')
  await mkdir(join(dir.paths.eval, 'small'), {recursive: true})
  await mkdir(join(dir.paths.eval, 'full'), {recursive: true})
  await writeFile(join(dir.paths.eval, 'small', 'results.json'), JSON.stringify(EVAL_SMALL))
  await writeFile(join(dir.paths.eval, 'full', 'results.json'), JSON.stringify(EVAL_FULL))
  if (options.withLogs !== undefined) await writeFile(join(dir.paths.logs, 'train.log'), options.withLogs)
  return dir
}

/** A launch record as `ups launch` writes it. */
export function launchLine(over: Record<string, unknown>): string {
  return JSON.stringify({
    instance_id: 31000001,
    run_id: RUN_ID,
    config: 'configs/train_burgers_32dim.yaml',
    config_hash: 'abc123',
    offer_id: 5001001,
    gpu: 'RTX 4090',
    dph: 0.4,
    estimate: {hours: 4, usd: 1.6},
    started_at: new Date(START).toISOString(),
    label: 'burgers',
    source: 'local',
    ...over,
  })
}
