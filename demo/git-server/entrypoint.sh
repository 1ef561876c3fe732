#!/bin/sh
# Demo git remote: a bare repository seeded from /seed on first start, served by `git daemon`
# on port 9418 with pushes enabled, so `git push git://localhost:9418/site.git` deploys.
set -eu
repo=/srv/git/site.git
if [ ! -d "$repo" ]; then
  git init -q --bare --initial-branch=main "$repo"
  work=$(mktemp -d)
  cp -R /seed/. "$work/"
  git -C "$work" init -q --initial-branch=main
  git -C "$work" add -A
  git -C "$work" -c user.name=demo -c user.email=demo@podpatterns.invalid commit -q -m "Seed the demo site"
  git -C "$work" push -q "$repo" main
  rm -rf "$work"
  # Anonymous pushes are a demo convenience; never expose this server beyond your machine.
  git -C "$repo" config daemon.receivepack true
fi
echo "git-server: serving git://<host>:9418/site.git" >&2
exec git daemon --reuseaddr --base-path=/srv/git --export-all --enable=receive-pack \
  --informative-errors --listen=0.0.0.0 --port=9418 /srv/git
