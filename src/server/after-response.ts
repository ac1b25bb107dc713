import type { FastifyReply, FastifyRequest } from 'fastify';

/**
 * Runs a use case's write once the answer has been sent, so its time cannot tell the client
 * anything (a failed sign-in's event, a reset mail for an account that exists). On 'close',
 * not 'finish': it also fires when the client hangs up first, so nothing is skipped.
 */
export function afterResponse(request: FastifyRequest, reply: FastifyReply, what: string) {
  return (task: () => Promise<void>) =>
    reply.raw.once('close', () => {
      task().catch((err: Error) => request.log.warn({ err: { message: err.message } }, `could not record ${what}`));
    });
}
