/**
 * Which run directory `ups train` writes to: the one given (created when missing, finished when a
 * killed run left it half laid out), the newest one under the runs root for a bare --resume, or a
 * new one. No tfjs here, so it stays cheap.
 */
import {mkdir, stat} from 'node:fs/promises'
import {join} from 'node:path'

import {createRunDir, listRuns, newRunId, RUN_SUBDIRS, type RunDir, runDirAt, writeResolvedConfig} from '../tracking/index.js'
import {ExitCode, UserError} from '../util/errors.js'
import {writeFileAtomic, writeJsonAtomic} from '../util/fs.js'

export interface RunDirRequest {
  /** --run-dir */
  path?: string
  resume: boolean
  runsRoot: string
  /** The resolved config, written to config.resolved.yaml of a new run. */
  config: unknown
  now: Date
  randomHex: () => string
}

const isFile = (p: string): Promise<boolean> => stat(p).then((s) => s.isFile(), () => false)

export async function prepareTrainRunDir(r: RunDirRequest): Promise<{dir: RunDir; created: boolean}> {
  if (r.path) {
    const dir = runDirAt(r.path)
    if (await isFile(dir.paths.metadata)) return {dir, created: false}
    for (const sub of RUN_SUBDIRS) await mkdir(dir.paths[sub], {recursive: true})
    await writeResolvedConfig(dir, r.config)
    await writeJsonAtomic(dir.paths.summary, {})
    if (!(await isFile(dir.paths.history))) await writeFileAtomic(dir.paths.history, '')
    await writeJsonAtomic(dir.paths.metadata, {run_id: dir.id, created_at: r.now.toISOString(), status: 'created'})
    return {dir, created: true}
  }
  if (r.resume) {
    const runs = await listRuns(r.runsRoot)
    const last = runs[runs.length - 1]
    if (!last) {
      throw new UserError(`--resume found no run under ${r.runsRoot}.`, {
        code: 'TRAIN_NOTHING_TO_RESUME',
        hint: 'Pass the run with --run-dir, or start a new run without --resume.',
        exitCode: ExitCode.USAGE,
      })
    }
    return {dir: last, created: false}
  }
  const dir = await createRunDir(r.runsRoot, newRunId(r.now, r.randomHex), {config: r.config, now: r.now})
  return {dir, created: true}
}

export const checkpointsOf = (dir: RunDir): string => join(dir.path, 'checkpoints')
