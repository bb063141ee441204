// A delivery's result from how its dialogue ended.
import type { MessageReport, RecipientReport } from '../report.ts';
import type { DeliveryResult, Ending, Stage } from './types.ts';

export function result(recipients: RecipientReport[], ending: Ending, stage: Stage): DeliveryResult {
  const message: MessageReport = { letter: ending.letter, text: ending.text };
  return {
    reports: { recipients, message },
    code: ending.code,
    stage,
    ...(ending.cause !== undefined ? { cause: ending.cause } : {}),
  };
}
