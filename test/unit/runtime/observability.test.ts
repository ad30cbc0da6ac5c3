import { jest } from '@jest/globals';

process.env.POWERTOOLS_LOG_LEVEL = 'SILENT';
process.env.POWERTOOLS_TRACE_ENABLED = 'false';
const { metrics, recordDelivery } = await import('../../../lambdas/runtime/observability');

describe('recordDelivery', () => {
  afterEach(() => jest.restoreAllMocks());

  it('counts every outcome of a delivery under the stage name', () => {
    const add = jest.spyOn(metrics, 'addMetric').mockImplementation(() => metrics);
    recordDelivery('live', { targeted: 5, delivered: 3, gone: 1, failed: 1 });
    expect(add.mock.calls.map(([name, , value]) => [name, value])).toEqual([
      ['liveDelivered', 3],
      ['liveGone', 1],
      ['liveFailed', 1],
    ]);
  });

  it('records nothing when there was nobody to deliver to', () => {
    const add = jest.spyOn(metrics, 'addMetric').mockImplementation(() => metrics);
    recordDelivery('late', { targeted: 0, delivered: 0, gone: 0, failed: 0 });
    expect(add).not.toHaveBeenCalled();
  });
});
