#!/bin/sh
# Creates Temporal's two databases in the shared PostgreSQL and brings their schemas up to date
# (the admin-tools way; replaces the deprecated auto-setup image). Safe to run again.
set -eu
echo 'waiting for postgresql:5432 …'
until nc -z -w 2 postgresql 5432; do sleep 1; done
for db in temporal temporal_visibility; do
  case $db in temporal) dir=temporal ;; *) dir=visibility ;; esac
  temporal-sql-tool --plugin postgres12 --ep postgresql -u kombo -p 5432 --db "$db" create || true
  temporal-sql-tool --plugin postgres12 --ep postgresql -u kombo -p 5432 --db "$db" setup-schema -v 0.0 || true
  temporal-sql-tool --plugin postgres12 --ep postgresql -u kombo -p 5432 --db "$db" \
    update-schema -d "/etc/temporal/schema/postgresql/v12/$dir/versioned"
done
echo 'temporal schema ready'
