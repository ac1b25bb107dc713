import { Type, type Static } from 'typebox';
import type { App, Request } from '../context.js';
import { Problem } from '../schemas.js';

const RevocationsQuery = Type.Object(
  { after: Type.Optional(Type.String({ maxLength: 64, description: 'The `cursor` of the previous page' })) },
  { additionalProperties: false },
);
type RevocationsQuery = Static<typeof RevocationsQuery>;

const RevocationList = Type.Object({
  entries: Type.Array(Type.Object({ sid: Type.String({ format: 'uuid' }), revokedAt: Type.String({ format: 'date-time' }) })),
  cursor: Type.String({ description: 'Opaque: pass it as `after` on the next poll' }),
});

/** The revocation feed: public like the JWKS, and like it holds no user id. */
export function revocationRoutes(app: App) {
  app.get<{ Querystring: RevocationsQuery }>('/revocations', {
    schema: {
      summary: 'Sessions ended or suspended within the last access-token lifetime, for resource servers',
      description:
        'Poll it (every second) with the `cursor` of the previous answer as `after`, and refuse tokens of a listed `sid` ' +
        'whose `iat` is not after `revokedAt`. Pages overlap by 10 s, so an entry may come twice. A forged or malformed cursor is 400.',
      tags: ['meta'], querystring: RevocationsQuery,
      response: { 200: RevocationList, '4xx': Problem, '5xx': Problem },
    },
  }, getRevocations);
}

async function getRevocations(request: Request<{ Querystring: RevocationsQuery }>) {
  const page = await request.server.tessera.revocations.page(request.query.after);
  return { entries: page.entries.map((e) => ({ sid: e.sid, revokedAt: e.revokedAt.toISOString() })), cursor: page.cursor };
}
