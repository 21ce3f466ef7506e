/**
 * Fake PipelineSteps for orchestrator tests: plausible files (checkpoints per stage, results.json
 * per evaluation, both written atomically), controllable metrics and failures, and an
 * append-only execution log (one JSON line per event, a single O_APPEND write each).
 */
import {appendFile, readFile} from 'node:fs/promises'
import {join} from 'node:path'

import {enabledStagesOf} from '../../../src/pipeline/stages.js'
import {readEvaluationResults, type PipelineSteps} from '../../../src/pipeline/steps.js'
import type {RunEstimate} from '../../../src/pipeline/estimate.js'
import {UserError} from '../../../src/util/errors.js'
import {writeJsonAtomic} from '../../../src/util/fs.js'

export type FakeUnit = 'validate' | 'data_check' | 'estimate' | `train:${string}` | 'eval:small' | 'eval:full'

export interface FakeOptions {
  /** The execution log (JSON lines). */
  log: string
  /** Sleep per unit of work, ms. */
  delayMs?: number
  metrics?: {small?: Record<string, number>; full?: Record<string, number>}
  /** Units that throw a UserError with this message. */
  fail?: Partial<Record<string, string>>
  /** Units that die right after committing their files (before anything records them). */
  crashAfterCommit?: string[]
  /** validate reports these failed checks. */
  invalid?: string[]
}

export interface LogEvent {
  event: 'start' | 'done'
  unit: string
  exec: string
  force?: boolean
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
let counter = 0

export function fakeSteps(o: FakeOptions): PipelineSteps & {options: FakeOptions} {
  const exec = () => `${process.pid}-${++counter}`
  const log = (e: LogEvent) => appendFile(o.log, JSON.stringify(e) + '\n')
  async function unit<T>(name: string, work: (id: string) => Promise<T>, extra: Partial<LogEvent> = {}): Promise<T> {
    const id = exec()
    await log({event: 'start', unit: name, exec: id, ...extra})
    if (o.delayMs) await sleep(o.delayMs)
    const message = o.fail?.[name]
    if (message) throw new UserError(message, {code: 'FAKE_FAILURE'})
    const out = await work(id)
    if (o.crashAfterCommit?.includes(name)) throw new Error(`simulated crash after ${name} committed`)
    await log({event: 'done', unit: name, exec: id, ...extra})
    return out
  }
  const readJson = async (path: string) => JSON.parse(await readFile(path, 'utf8').catch(() => 'null'))
  return {
    options: o,
    validate: (_path, _overrides) =>
      unit('validate', async () => ({
        valid: !o.invalid?.length, failed: o.invalid ?? [], warnings: [],
        summary: {passed: 27 - (o.invalid?.length ?? 0), warnings: 0, failed: o.invalid?.length ?? 0, skipped: 0, total: 27},
      })),
    checkData: () => unit('data_check', async () => ({ok: true, root: 'data', generated: [], files: [{task: 'burgers1d', split: 'train', path: 'data/burgers1d_train.h5', ok: true, numSamples: 10}]})),
    estimate: (config, options) =>
      unit('estimate', async () => ({line: `Estimated: 0.010 h, $0.02 on ${options.gpu ?? 'A100'} ($1.89/hr)`, totalSeconds: 36, costUsd: 0.02, stages: enabledStagesOf(config)}) as unknown as RunEstimate),
    async train(config, options) {
      const stages: string[] = []
      for (const stage of enabledStagesOf(config)) {
        const path = join(options.runDir, 'checkpoints', `${stage}.json`)
        const previous = await readJson(path)
        if (previous && !options.force) continue // resume: this stage is finished
        await unit(`train:${stage}`, (id) => writeJsonAtomic(path, {stage, epochs: 1, execs: [...(previous?.execs ?? []), id]}), {force: options.force})
        stages.push(stage)
      }
      await writeJsonAtomic(join(options.runDir, 'checkpoints', 'metadata.json'), {stages: enabledStagesOf(config)})
      return {stages, checkpointsDir: join(options.runDir, 'checkpoints'), wandb: null}
    },
    evaluate: (_config, options) =>
      unit(`eval:${options.kind}`, async (id) => {
        const path = join(options.out, 'results.json')
        const previous = await readJson(path)
        const metrics = o.metrics?.[options.kind] ?? {nrmse: options.kind === 'small' ? 0.2 : 0.18, mse: 0.01}
        await writeJsonAtomic(path, {metrics, split: options.split, execs: [...(previous?.execs ?? []), id]})
        return {metrics, resultsPath: path}
      }),
    readEvaluation: readEvaluationResults,
  }
}

export async function readLog(path: string): Promise<LogEvent[]> {
  const text = await readFile(path, 'utf8').catch(() => '')
  return text.split('\n').filter((l) => l.trim() !== '').flatMap((l) => {
    try {
      return [JSON.parse(l) as LogEvent]
    } catch {
      return [] // a torn last line from a kill
    }
  })
}

export function doneCount(events: LogEvent[], unit: string): number {
  return events.filter((e) => e.event === 'done' && e.unit === unit).length
}

export function startCount(events: LogEvent[], unit: string): number {
  return events.filter((e) => e.event === 'start' && e.unit === unit).length
}

export const TINY_CONFIG = `data: {task: burgers1d, root: data}
latent: {dim: 8, tokens: 8}
operator:
  pdet: {hidden_dim: 16, depths: [1, 1], group_size: 8, num_heads: 2}
stages:
  autoencoder: {epochs: 1}
  operator: {epochs: 2}
evaluation: {split: test}
`

export const FIXED_NOW = new Date('2025-10-16T12:00:00Z')
export const RUN_ID = 'run_20251016_120000_abcd'

/** Options as `ups run --train-config <dir>/train.yaml` would pass them, leaderboard inside dir. */
export function runOptions(dir: string, over: Partial<import('../../../src/pipeline/metadata.js').PipelineRunOptions & {runId: string}> = {}) {
  return {
    trainConfig: join(dir, 'train.yaml'), overrides: [], runId: RUN_ID,
    skipValidation: false, skipDataCheck: false, skipDryRun: false, skipTraining: false, forceTrain: false,
    skipSmallEval: false, skipFullEval: false, redoSmallEval: false, redoFullEval: false,
    tags: {}, minSmallDelta: 0, minFullDelta: 0, improvementMetric: 'nrmse', gateRatios: {},
    leaderboardCsv: join(dir, 'leaderboard.csv'), leaderboardHtml: join(dir, 'leaderboard.html'),
    wandbMode: 'disabled' as const, leaderboardWandb: false, strictExit: false,
    ...over,
  }
}

export function pipelineDeps(dir: string, steps: PipelineSteps) {
  return {steps, now: () => FIXED_NOW, randomHex: () => 'abcd', cwd: dir, runsRoot: join(dir, 'runs')}
}
