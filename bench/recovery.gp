# Recovery timeline: confirmed publishes per 10 ms around one kill/restart of the server, with
# the state changes natsvisor reported. Called by scripts/bench with
#   -e "datafile='...'; eventsfile='...'; outfile='...'"
if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) {
  set terminal pngcairo size 1200,500 noenhanced font ",10"
} else {
  set terminal png size 1200,500 noenhanced
}
set output outfile
set title "natsvisor recovery: confirmed publishes per 10 ms (publish + flush through a handle); server killed at t = 0"
set xlabel "time since the kill (ms)"
set ylabel "confirmed publishes / 10 ms"
set grid ytics
set key top right
stats datafile using 2 nooutput
ymax = STATS_max * 2 + 1
set yrange [0:ymax]
set style fill solid 0.6 noborder
plot datafile using 1:2 with steps lw 1.5 lc rgb "#1f77b4" title "confirmed publishes", \
     eventsfile using 1:(0):(0):(ymax*0.9) with vectors nohead dt 2 lc rgb "#d62728" notitle, \
     eventsfile using 1:(ymax*(0.96 - 0.055*(int($0) % 8))):2 with labels left offset 0.4,0 font ",9" tc rgb "#d62728" notitle
