# Written by `mixlab report`.  Run: gnuplot scaling_state_bytes.gp
# Data: scaling_state_bytes.dat (one block per configuration)
set encoding utf8
set terminal pngcairo size 1000,600 enhanced font 'DejaVu Sans,11'
set output "scaling_state_bytes.png"
set title "Inference state (analytic) vs sequence length" noenhanced
set xlabel "sequence length N (tokens)" noenhanced
set ylabel "Inference state (analytic) (MiB)" noenhanced
set key outside right top box opaque spacing 1.2
set grid xtics ytics lc rgb '#dddddd'
set border 3 lw 1.2
set tics nomirror
set logscale x 2
set logscale y 10
set ytics ('10^{3}' 1000, '10^{4}' 10000, '10^{5}' 100000)
set xtics ('2k' 2048, '4k' 4096, '8k' 8192, '16k' 16384, '32k' 32768)
set xrange [1833.011345:36611.26494]
set yrange [110.1986558:144402.4874]
y_top = 144402.4874  # failed sizes are drawn here, on the upper edge
plot "scaling_state_bytes.dat" index 0 using 1:2 with linespoints lw 2 pt 7 ps 1.1 dt 1 lc rgb '#0072B2' title "mamba-1.3b n=16" noenhanced, \
     "scaling_state_bytes.dat" index 1 using 1:2 with linespoints lw 2 pt 5 ps 1.1 dt 1 lc rgb '#D55E00' title "mamba-546m n=16" noenhanced, \
     "scaling_state_bytes.dat" index 2 using 1:2 with linespoints lw 2 pt 9 ps 1.1 dt 1 lc rgb '#009E73' title "qwen2-1.36b" noenhanced, \
     "scaling_state_bytes.dat" index 3 using 1:2 with linespoints lw 2 pt 13 ps 1.1 dt 1 lc rgb '#CC79A7' title "qwen2-340m" noenhanced, \
     "scaling_state_bytes.dat" index 4 using 1:2 with linespoints lw 2 pt 11 ps 1.1 dt 1 lc rgb '#E69F00' title "qwen2-alternate-swa-366m W=2048" noenhanced, \
     "scaling_state_bytes.dat" index 5 using 1:2 with linespoints lw 2 pt 15 ps 1.1 dt 1 lc rgb '#56B4E9' title "scout-mamba-1.59b n=16 S=10" noenhanced, \
     "scaling_state_bytes.dat" index 6 using 1:2 with linespoints lw 2 pt 7 ps 1.1 dt 1 lc rgb '#000000' title "scout-mamba-430m n=16 S=10" noenhanced, \
     "scaling_state_bytes.dat" index 7 using 1:2 with linespoints lw 2 pt 5 ps 1.1 dt 1 lc rgb '#8C564B' title "scout-swa-1.57b W=1024 S=10" noenhanced, \
     "scaling_state_bytes.dat" index 8 using 1:2 with linespoints lw 2 pt 9 ps 1.1 dt 1 lc rgb '#7F7F7F' title "scout-swa-470m W=1024 S=10" noenhanced
set output
set terminal svg size 1000,600 dynamic enhanced font 'DejaVu Sans,11'
set output "scaling_state_bytes.svg"
replot
set output
set terminal pdfcairo size 6.5in,3.9in enhanced font 'DejaVu Sans,9'
set output "scaling_state_bytes.pdf"
replot
set output
