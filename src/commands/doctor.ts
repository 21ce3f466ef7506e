import {BaseCommand} from '../cli/base-command.js'
import {realDoctorDeps} from '../cli/deps.js'
import {ExitCode} from '../util/errors.js'
import {type DoctorResult, renderDoctor, runDoctor} from '../doctor/index.js'

export type DoctorCommandResult = DoctorResult

export default class Doctor extends BaseCommand {
  static summary = 'Check this machine: Node, TensorFlow.js backends, the vastai CLI, API keys.'
  static description = 'Reports whether keys are set (yes/no), never their values. Exit 1 when something required is missing.'
  static examples = ['<%= config.bin %> doctor', '<%= config.bin %> doctor --json']

  async run(): Promise<DoctorCommandResult> {
    await this.parse(Doctor)
    const result = await runDoctor(realDoctorDeps())
    if (!this.jsonEnabled()) this.log(renderDoctor(result))
    if (!result.ok) process.exitCode = ExitCode.CHECK_FAILED
    return result
  }
}
