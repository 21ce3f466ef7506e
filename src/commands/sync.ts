import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {realWandbDeps} from '../cli/tracking-deps.js'
import {renderSync, syncRunByRef, type SyncResult as TrackingSyncResult} from '../tracking/index.js'

export type SyncResult = TrackingSyncResult

export default class Sync extends BaseCommand {
  static summary = 'Upload a run to Weights & Biases: records logged offline or whose upload failed.'
  static description = `Sends what W&B has not acknowledged yet: history rows, the summary, config, queued files (offline runs: checkpoints/, eval/, reports/) and the finished/failed state.
Safe to repeat: acknowledged offsets are kept in <run>/wandb/state.json and checked against the server, so no step is sent twice.
A run directory that a live ups process is still writing (its lock is held) is refused (exit 1, naming the process); a dead writer's lock is reclaimed.
Needs WANDB_API_KEY; WANDB_BASE_URL selects a self-hosted server. WANDB_MODE is ignored (syncing is an explicit request).`

  static examples = [
    '<%= config.bin %> sync run_20250301_142233_9f3a',
    '<%= config.bin %> sync run_20250301 --runs-root /data/ups/artifacts/runs',
    '<%= config.bin %> sync artifacts/runs/run_20250301_142233_9f3a --project pde-surrogate --entity my-team',
    '<%= config.bin %> sync run_20250301_142233_9f3a --json',
  ]

  static args = {
    run: Args.string({required: true, description: 'Run id, unique id prefix, or path of a run directory.'}),
  }

  static flags = {
    'runs-root': Flags.string({description: 'Folder holding the run directories.', default: 'artifacts/runs'}),
    project: Flags.string({description: 'W&B project, for a run whose config names none.'}),
    entity: Flags.string({description: 'W&B entity (team or user), for a run whose config names none.'}),
  }

  async run(): Promise<SyncResult> {
    const {args, flags} = await this.parse(Sync)
    const result = await syncRunByRef(
      args.run,
      {runsRoot: flags['runs-root'], settings: {project: flags.project, entity: flags.entity}},
      realWandbDeps(this.logger),
    )
    if (!this.jsonEnabled()) this.log(renderSync(result))
    return result
  }
}
