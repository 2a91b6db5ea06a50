#!/bin/sh
# Fake olddefconfig <srctree> <srcarch> <.config>: like kconfig, drop every
# option that no Kconfig file declares or whose "depends on" option is not y/m.
set -eu
srctree=$1 srcarch=$2 config=$3
awk '
FNR == 1 { file++ }
file <= 2 && $1 == "config" { cur = $2; declared[cur] = 1; next }
file <= 2 && $1 == "depends" && $2 == "on" { dep[cur] = $3; next }
file <= 2 { next }
match($0, /^CONFIG_[A-Za-z0-9_]+=/) { name = substr($0, 8, RLENGTH - 8); value[name] = substr($0, RLENGTH + 1) }
match($0, /^# CONFIG_[A-Za-z0-9_]+ is not set$/) { name = substr($2, 8); value[name] = "n" }
name != "" { order[++n] = name; line[name] = $0; name = "" }
END {
	for (i = 1; i <= n; i++) {
		name = order[i]
		if (seen[name]++ || !(name in declared)) continue
		if (dep[name] != "" && value[dep[name]] != "y" && value[dep[name]] != "m") continue
		print line[name]
	}
}
' "$srctree/Kconfig" "$srctree/arch/$srcarch/Kconfig" "$config" > "$config.new"
mv "$config.new" "$config"
