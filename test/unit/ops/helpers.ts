/** Shared set-up for launch/monitor/watchdog/recover tests: the fake vastai, a fake git, a fake clock. */
import {STAGES, resolveStage, type UpsConfig} from '../../../src/config/index.js'
import type {LaunchEstimate} from '../../../src/pipeline/launch-estimate.js'
import {findGpu} from '../../../src/pipeline/gpus.js'
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {type GitRunner, type LaunchDeps, VastCli, VastProvider} from '../../../src/vast/index.js'
import {type FakeVast, makeFakeVast} from '../../fixtures/fake-vast.js'
import {REPO_ROOT} from '../../helpers.js'

export const CONFIG = join(REPO_ROOT, 'configs', 'train_burgers_32dim.yaml')
export const ORIGIN = 'https://example.org/acme/ups.git'
export const HEAD = '0123456789abcdef0123456789abcdef01234567'
export const WANDB_KEY = 'wandb_secret_value_0123456789'

export interface Harness {
  fake: FakeVast
  dir: string
  provider: VastProvider
  deps: LaunchDeps
  gitCalls: string[][]
  stages: string[]
  /** Makes `git status --porcelain` report changes. */
  setDirty(dirty: boolean): void
  calls(): string[]
  cleanup(): void
}

export function harness(initial: Parameters<typeof makeFakeVast>[0] = {}): Harness {
  const fake = makeFakeVast({lifecycle: {created: 10, loading: 30}, ...initial})
  const dir = mkdtempSync(join(tmpdir(), 'ups-ops-'))
  const provider = new VastProvider(new VastCli({env: fake.env(), bin: fake.bin, sleep: async () => {}}))
  const gitCalls: string[][] = []
  let dirty = false
  const git: GitRunner = async (args) => {
    gitCalls.push(args)
    const out = (stdout: string) => ({stdout, stderr: '', exitCode: 0})
    if (args[0] === 'rev-parse' && args[1] === '--show-toplevel') return out(REPO_ROOT + '\n')
    if (args[0] === 'remote') return out(ORIGIN + '\n')
    if (args[0] === 'rev-parse') return out(HEAD + '\n')
    if (args[0] === 'status') return out(dirty ? ' M src/vast/launch.ts\n' : '')
    return {stdout: '', stderr: 'unknown', exitCode: 1}
  }
  const stages: string[] = []
  const deps: LaunchDeps = {
    provider,
    git,
    // A simple deterministic estimate: launch's own logic is under test here; the estimator has its own tests.
    estimate: testEstimate,
    // The fake's clock is the one clock: sleeping advances it.
    now: () => new Date(fake.read().now * 1000),
    sleep: async (ms) => fake.advance(ms / 1000),
    randomHex: () => 'beef',
    env: {WANDB_API_KEY: WANDB_KEY},
    cwd: dir,
    launchesFile: join(dir, 'home', 'launches.jsonl'),
    onStage: (s, m) => stages.push(`${s}: ${m}`),
  }
  return {
    fake, dir, provider, deps, gitCalls, stages,
    setDirty: (d) => void (dirty = d),
    calls: () => (fake.read().calls ?? []).map((c) => c.argv.slice(0, 2).join(' ')),
    cleanup: () => {
      fake.cleanup()
      rmSync(dir, {recursive: true, force: true})
    },
  }
}

/** 15 minutes of set-up plus 2 minutes per epoch at the table price (1.89 $/h when unknown). */
export async function testEstimate(config: UpsConfig, gpu: string): Promise<LaunchEstimate> {
  const epochs = STAGES.map((s) => resolveStage(config, s)).filter((s) => s.enabled).reduce((sum, s) => sum + s.epochs, 0)
  const hours = Math.round(((15 + epochs * 2) / 60) * 1000) / 1000
  const pricePerHour = (findGpu(gpu)?.pricePerHour ?? 1.89) * (config.vast?.num_gpus ?? 1)
  return {hours, usd: Math.round(hours * pricePerHour * 100) / 100, pricePerHour, source: 'test estimate'}
}
