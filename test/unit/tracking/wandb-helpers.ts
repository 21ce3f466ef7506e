import {readdir, readFile} from 'node:fs/promises'
import {join} from 'node:path'

import {createRunDir, type RunDir} from '../../../src/tracking/rundir.js'
import type {WandbDeps, WandbSettings} from '../../../src/tracking/wandb.js'

export const SETTINGS: WandbSettings = {
  enabled: true,
  project: 'ups-test',
  run_name: 'burgers-32dim',
  group: 'burgers',
  job_type: 'train',
  tags: ['burgers', 'latent32'],
}

export const CONFIG = {
  latent: {dim: 32},
  training: {lr: 0.001, batch_size: 64},
  logging: {wandb: {enabled: true, project: 'ups-test', run_name: 'burgers-32dim', group: 'burgers', job_type: 'train', tags: ['burgers', 'latent32']}},
}

export type FakeDeps = WandbDeps & {tick(ms: number): void}

/** Real fetch (loopback only), a clock that moves only when told or slept on. */
export function fakeDeps(env: Record<string, string | undefined>): FakeDeps {
  let t = Date.UTC(2025, 0, 1)
  return {
    env,
    fetch: globalThis.fetch,
    now: () => new Date(t),
    sleep: async (ms) => {
      t += ms
    },
    tick: (ms) => {
      t += ms
    },
  }
}

let seq = 0
export async function newRun(root: string, config: unknown = CONFIG): Promise<RunDir> {
  seq += 1
  return createRunDir(root, `run_20250101_000000_${seq.toString(16).padStart(4, '0')}`, {config})
}

/** Every file under a folder, with its text. */
export async function allFiles(dir: string): Promise<Array<{path: string; text: string}>> {
  const out: Array<{path: string; text: string}> = []
  for (const e of await readdir(dir, {withFileTypes: true})) {
    const path = join(dir, e.name)
    if (e.isDirectory()) out.push(...(await allFiles(path)))
    else out.push({path, text: await readFile(path, 'latin1')})
  }
  return out
}
