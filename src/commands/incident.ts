import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {realLaunchRecordsPath, realNow, scpCopier} from '../cli/ops-deps.js'
import {realVastProvider, vastFlags} from '../cli/vast.js'
import {openIncident, renderIncidentSummary, type IncidentResult as OpsIncidentResult} from '../ops/index.js'
import {redactJson, redactSecrets} from '../util/secrets.js'

export type IncidentResult = OpsIncidentResult

export default class Incident extends BaseCommand {
  static summary = 'Respond to a failed run (INC-001): save the log, copy checkpoints off, stop the instance, classify the root cause, write a report.'
  static description = `In order: saves \`vastai logs\` to incidents/<timestamp>_<id>/instance.log; copies the run's checkpoints off the instance with scp (only possible while it runs; the report says why not otherwise); stops the instance (never destroys it); classifies the root cause from the log (out of memory -> reduce the batch size; shape/dimension mismatch -> ups validate; NaN/Inf -> lower LR and clip gradients; any other traceback -> the frames that matter); writes report.md, classification.json and incident.json.
Safe to repeat: a second run on the same instance updates the same folder, keeps checkpoints already copied and does not stop the instance again.`

  static examples = [
    '<%= config.bin %> incident 31000001',
    '<%= config.bin %> incident 31000001 --run run_20250301_142233_9f3a',
    '<%= config.bin %> incident 31000001 --json | jq .classification.cause',
    '<%= config.bin %> incident 31000001 --incidents-dir /data/ups/incidents --new',
  ]

  static args = {
    id: Args.integer({description: 'Vast.ai instance id (see `ups instances list`).', required: true, min: 1}),
  }

  static flags = {
    run: Flags.string({description: 'The run on the instance (default: from the launch records or the log).'}),
    'incidents-dir': Flags.string({description: 'Where incident folders go.', default: 'incidents'}),
    'runs-root': Flags.string({description: 'Local run directories (for the batch size in use).', default: 'artifacts/runs'}),
    'remote-workdir': Flags.string({description: 'The project folder on the instance.', default: '/workspace/ups'}),
    new: Flags.boolean({description: 'Open a new incident folder even if one exists for this instance.'}),
    ...vastFlags,
  }

  async run(): Promise<IncidentResult> {
    const {args, flags} = await this.parse(Incident)
    const result = await openIncident(
      {
        instanceId: args.id,
        runId: flags.run,
        incidentsRoot: flags['incidents-dir'],
        runsRoot: flags['runs-root'],
        launchRecords: realLaunchRecordsPath(),
        remoteWorkdir: flags['remote-workdir'],
        newIncident: flags.new,
      },
      {provider: realVastProvider(flags, this.logger), copyCheckpoints: scpCopier, now: realNow},
    )
    if (!this.jsonEnabled()) this.log(redactSecrets(renderIncidentSummary(result)))
    return redactJson(result)
  }
}
