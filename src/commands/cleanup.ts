import {Flags} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {realLaunchRecordsPath, realNow} from '../cli/ops-deps.js'
import {realVastProvider, vastFlags} from '../cli/vast.js'
import {cleanup, parseDuration, renderCleanup, type CleanupResult as OpsCleanupResult} from '../ops/index.js'
import {ExitCode} from '../util/errors.js'

export type CleanupResult = OpsCleanupResult

export default class Cleanup extends BaseCommand {
  static summary = 'Weekly cleanup (MAINT-001): destroy old stopped instances, archive old runs, delete old latent caches. Lists only, unless --yes.'
  static description = `Without --yes nothing changes: the plan is printed (or returned with --json).
Stopped instances: destroyed when their last sign of activity (Vast start date, launch record end) is older than --stopped-older-than. Running, loading or scheduled instances are never touched.
Runs: run directories under --runs-root whose last activity (metadata times, history, file times) is older than --archive-runs-older-than move to --archive-dir/<run_id>. A run in progress (status running/created with activity in the last 24 h, or its run-directory lock held by a live process), or whose instance still runs, is never touched.
Latent caches: folders with a meta.json under --cache-dir (and the config's training.latent_cache_dir with --config) untouched for longer than --cache-older-than are deleted.
Durations: 30m, 12h, 7d, 2w (a bare number is days). Exit 3 when an action failed.`

  static examples = [
    '<%= config.bin %> cleanup',
    '<%= config.bin %> cleanup --yes',
    '<%= config.bin %> cleanup --stopped-older-than 3d --archive-runs-older-than 60d --cache-older-than 7d --yes',
    '<%= config.bin %> cleanup --config configs/train_burgers_32dim.yaml --json',
  ]

  static flags = {
    'stopped-older-than': Flags.string({description: 'Destroy stopped instances idle for longer than this.', default: '7d'}),
    'archive-runs-older-than': Flags.string({description: 'Archive runs idle for longer than this.', default: '30d'}),
    'cache-older-than': Flags.string({description: 'Delete latent caches untouched for longer than this.', default: '14d'}),
    'runs-root': Flags.string({description: 'Folder holding the run directories.', default: 'artifacts/runs'}),
    'archive-dir': Flags.string({description: 'Where old runs move to.', default: 'archive/runs'}),
    'cache-dir': Flags.string({description: 'Latent cache folder (repeatable).', default: ['data/latent_cache'], multiple: true}),
    config: Flags.string({description: "Also clean this config's training.latent_cache_dir."}),
    yes: Flags.boolean({char: 'y', description: 'Do it (default: only list what would be done).'}),
    ...vastFlags,
  }

  async run(): Promise<CleanupResult> {
    const {flags} = await this.parse(Cleanup)
    const result = await cleanup(
      {
        stoppedOlderThanMs: parseDuration(flags['stopped-older-than'], 'stopped-older-than'),
        archiveRunsOlderThanMs: parseDuration(flags['archive-runs-older-than'], 'archive-runs-older-than'),
        cacheOlderThanMs: parseDuration(flags['cache-older-than'], 'cache-older-than'),
        runsRoot: flags['runs-root'],
        archiveRoot: flags['archive-dir'],
        cacheDirs: flags['cache-dir'],
        configPath: flags.config,
        launchRecords: realLaunchRecordsPath(),
        yes: flags.yes,
      },
      {provider: realVastProvider(flags, this.logger), now: realNow},
    )
    if (!this.jsonEnabled()) this.log(renderCleanup(result))
    // Partial failure: the result still prints; the exit code says something went wrong.
    if (result.summary.errors > 0) process.exitCode = ExitCode.EXTERNAL
    return result
  }
}
