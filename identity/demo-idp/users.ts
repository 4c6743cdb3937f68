/** A person known to a demo partner identity provider. */
export interface DemoUser {
  /** Stable subject at the partner IdP. */
  sub: string;
  /** Login name typed on the demo login page. */
  username: string;
  email: string;
  name: string;
  groups: string[];
}

/**
 * The demo organisations' people. `acme` also holds a contractor whose email is on globex's
 * domain, so that the broker's cross-organisation refusal can be shown and tested.
 */
export const DEMO_USERS: Readonly<Record<string, readonly DemoUser[]>> = {
  acme: [
    {
      sub: 'u-1001',
      username: 'alice',
      email: 'alice@acme.example',
      name: 'Alice Able',
      groups: ['ml-engineers', 'staff'],
    },
    {
      sub: 'u-1002',
      username: 'bob',
      email: 'bob@acme.example',
      name: 'Bob Baker',
      groups: ['analysts', 'staff'],
    },
    {
      sub: 'u-1099',
      username: 'mallory',
      email: 'mallory@globex.example',
      name: 'Mallory Contractor',
      groups: ['staff'],
    },
  ],
  globex: [
    {
      sub: 'g-2001',
      username: 'carol',
      email: 'carol@globex.example',
      name: 'Carol Chen',
      groups: ['platform-admins', 'staff'],
    },
    {
      sub: 'g-2002',
      username: 'dave',
      email: 'dave@globex.example',
      name: 'Dave Diaz',
      groups: ['analysts'],
    },
  ],
};
