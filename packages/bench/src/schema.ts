/**
 * The JSON Schema (draft 2020-12) of a `hmmkit sweep --spec` file (a {@link SweepSpec}), built
 * from the same name lists the CLI accepts, so it cannot drift from them. `hmmkit schema` prints
 * it; packages/bench/sweep.schema.json is a copy checked against it by a test.
 *
 * @module
 */
import { REPLAY_POLICIES } from './experiment.ts';
import { ACCEPTED, SWEEP_SPEC_FIELDS } from './flags.ts';

const names = (xs: readonly string[]) => ({ enum: [...xs] });
const nonEmpty = (items: object) => ({ type: 'array', minItems: 1, items });

/** The schema object. */
export function sweepSchema(): Record<string, unknown> {
  const costOverrides = {
    type: 'object',
    description: 'Cost-model overrides: parameter name → value (see docs/cost-model.md)',
    propertyNames: names(ACCEPTED.costs),
    additionalProperties: { type: 'number', minimum: 0 },
  };
  const properties: Record<keyof typeof SWEEP_SPEC_FIELDS, object> = {
    workloads: nonEmpty({
      type: 'object',
      required: ['generator'],
      additionalProperties: false,
      properties: {
        generator: names(ACCEPTED.generators),
        params: {
          type: 'object',
          description:
            'Generator parameters: footprintBytes, iterations, numSMs, warpsPerSM, elemSize, maxAccesses, ... (see packages/workloads); for generator trace: file (path) and format (hmmkit, uvmsmart, csv; default: detected)',
          additionalProperties: { type: ['number', 'string', 'boolean'] },
        },
        cpu: names(ACCEPTED.cpu),
        label: { type: 'string' },
      },
    }),
    granules: nonEmpty(names(ACCEPTED.granules)),
    notifiers: nonEmpty(names(ACCEPTED.notifiers)),
    evictions: nonEmpty(names(ACCEPTED.evictions)),
    granulesOnceFull: nonEmpty(names(ACCEPTED.granulesOnceFull)),
    costs: {
      type: 'array',
      items: {
        type: 'object',
        required: ['label', 'overrides'],
        additionalProperties: false,
        properties: { label: { type: 'string' }, overrides: costOverrides },
      },
    },
    seeds: { type: 'array', items: { type: 'integer', minimum: 0, maximum: 4294967295 } },
    devices: { type: 'integer', minimum: 1, maximum: 8 },
    vramBytes: { type: 'integer', minimum: 2097152, multipleOf: 2097152 },
    placement: names(ACCEPTED.placement),
    accessCounterThreshold: { type: 'integer', minimum: 1, maximum: 65535 },
    replay: names(REPLAY_POLICIES),
    maxSteps: { type: 'integer', minimum: 1 },
    timeoutMs: { type: 'number', minimum: 0 },
  };
  for (const [k, v] of Object.entries(properties)) {
    (v as Record<string, unknown>).description ??= SWEEP_SPEC_FIELDS[k as keyof typeof SWEEP_SPEC_FIELDS];
  }
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: 'https://github.com/hmmkit/hmmkit/packages/bench/sweep.schema.json',
    title: 'hmmkit sweep spec',
    description: 'The cross product of its lists is run, one experiment per cell (hmmkit sweep --spec FILE).',
    type: 'object',
    required: ['workloads', 'granules', 'notifiers'],
    additionalProperties: false,
    properties,
  };
}
