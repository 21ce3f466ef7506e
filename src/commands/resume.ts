import {Args} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {realPipelineDeps} from '../cli/pipeline-deps.js'
import {redoFlags, runsRootFlag} from '../cli/pipeline-flags.js'
import {type PipelineResult, resumePipeline} from '../pipeline/index.js'

export type ResumeResult = PipelineResult

export default class Resume extends BaseCommand {
  static summary = 'Continue a pipeline run from what its metadata and checkpoints say is done.'
  static description = `Reruns \`ups run\` for an existing run with the options it was started with: finished steps are skipped, an interrupted training stage continues from its newest checkpoint, a finished evaluation is adopted rather than redone. Every step is idempotent and every write atomic, so resuming after a crash or kill -9 is safe. Run from the folder the run was started in (data paths are relative to it).`
  static examples = [
    '<%= config.bin %> resume run_20251016_120000_ab12',
    '<%= config.bin %> resume artifacts/runs/run_20251016_120000_ab12 --redo-full-eval',
    '<%= config.bin %> resume run_20251016 --force-train --json',
  ]
  static args = {run: Args.string({description: 'Run directory, run id, or a unique id prefix.', required: true})}
  static flags = {...redoFlags, 'runs-root': runsRootFlag}

  async run(): Promise<ResumeResult> {
    const {args, flags} = await this.parse(Resume)
    const result = await resumePipeline(
      args.run,
      {redoSmallEval: flags['redo-small-eval'], redoFullEval: flags['redo-full-eval'], forceTrain: flags['force-train']},
      realPipelineDeps(this.logger, flags['runs-root']),
    )
    if (!this.jsonEnabled()) this.log(result.message)
    process.exitCode = result.exitCode
    return result
  }
}
