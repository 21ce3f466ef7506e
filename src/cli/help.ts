import {type Command, Help} from '@oclif/core'

import {EXIT_CODE_MEANINGS} from '../util/errors.js'

/** oclif's help plus an EXIT CODES section on every command, from the one exit-code table. */
export default class UpsHelp extends Help {
  formatCommand(command: Command.Loadable): string {
    const rows = Object.entries(EXIT_CODE_MEANINGS).map(([code, meaning]) => [code, meaning] as [string, string])
    return `${super.formatCommand(command)}\n\n${this.section('EXIT CODES', rows)}`
  }
}
