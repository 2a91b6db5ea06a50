#!/bin/sh
# Fake merge_config.sh -m -O <dir> <base> <fragment>...: every option takes
# the value of its last mention; the result is <dir>/.config.
set -eu
out=.
while getopts mO: opt; do
	case $opt in
	O) out=$OPTARG ;;
	m) ;;
	*) exit 1 ;;
	esac
done
shift $((OPTIND - 1))
awk '
match($0, /^CONFIG_[A-Za-z0-9_]+=/) { name = substr($0, 8, RLENGTH - 8) }
match($0, /^# CONFIG_[A-Za-z0-9_]+ is not set$/) { name = substr($2, 8) }
name != "" { if (!(name in line)) order[++n] = name; line[name] = $0; name = "" }
END { for (i = 1; i <= n; i++) print line[order[i]] }
' "$@" > "$out/.config.merged"
mv "$out/.config.merged" "$out/.config"
echo "#"
echo "# merged configuration written to $out/.config"
echo "#"
