# Written by `mixlab report`.  Run: gnuplot recall_accuracy_vs_d_model_L64_K4.gp
# Data: recall_accuracy_vs_d_model_L64_K4.dat (one block per configuration)
set encoding utf8
set terminal pngcairo size 1000,600 enhanced font 'DejaVu Sans,11'
set output "recall_accuracy_vs_d_model_L64_K4.png"
set title "MQAR, sequence length 64, 4 pairs: accuracy vs d_model (best over train.lr)" noenhanced
set xlabel "d_model" noenhanced
set ylabel "accuracy" noenhanced
set key outside right top box opaque spacing 1.2
set grid xtics ytics lc rgb '#dddddd'
set border 3 lw 1.2
set tics nomirror
set logscale x 2
set xtics ('64' 64, '256' 256)
set xrange [59.25925926:276.48]
set yrange [-0.05938:1.07359]
y_top = 1.07359  # failed sizes are drawn here, on the upper edge
plot "recall_accuracy_vs_d_model_L64_K4.dat" index 0 using 1:2 with linespoints lw 2 pt 7 ps 1.1 dt 1 lc rgb '#0072B2' title "attention" noenhanced, \
     "recall_accuracy_vs_d_model_L64_K4.dat" index 1 using 1:2 with linespoints lw 2 pt 5 ps 1.1 dt 1 lc rgb '#D55E00' title "checkpoint_attention S=10" noenhanced, \
     "recall_accuracy_vs_d_model_L64_K4.dat" index 2 using 1:2 with linespoints lw 2 pt 9 ps 1.1 dt 1 lc rgb '#009E73' title "dtrnet" noenhanced, \
     "recall_accuracy_vs_d_model_L64_K4.dat" index 3 using 1:2 with linespoints lw 2 pt 13 ps 1.1 dt 1 lc rgb '#CC79A7' title "fft_conv" noenhanced, \
     "recall_accuracy_vs_d_model_L64_K4.dat" index 4 using 1:2 with linespoints lw 2 pt 11 ps 1.1 dt 1 lc rgb '#E69F00' title "gated_cnn" noenhanced, \
     "recall_accuracy_vs_d_model_L64_K4.dat" index 5 using 1:2 with linespoints lw 2 pt 15 ps 1.1 dt 1 lc rgb '#56B4E9' title "learned_topk W=8 k=16" noenhanced, \
     "recall_accuracy_vs_d_model_L64_K4.dat" index 6 using 1:2 with linespoints lw 2 pt 7 ps 1.1 dt 1 lc rgb '#000000' title "linear_attention" noenhanced, \
     "recall_accuracy_vs_d_model_L64_K4.dat" index 7 using 1:2 with linespoints lw 2 pt 5 ps 1.1 dt 1 lc rgb '#8C564B' title "mamba n=16" noenhanced, \
     "recall_accuracy_vs_d_model_L64_K4.dat" index 8 using 1:2 with linespoints lw 2 pt 9 ps 1.1 dt 1 lc rgb '#7F7F7F' title "mamba2 n=128" noenhanced, \
     "recall_accuracy_vs_d_model_L64_K4.dat" index 9 using 1:2 with linespoints lw 2 pt 13 ps 1.1 dt 1 lc rgb '#BCBD22' title "scout-swa W=16 S=10" noenhanced, \
     "recall_accuracy_vs_d_model_L64_K4.dat" index 10 using 1:2 with linespoints lw 2 pt 11 ps 1.1 dt 2 lc rgb '#0072B2' title "swa W=128" noenhanced, \
     "recall_accuracy_vs_d_model_L64_K4.dat" index 11 using 1:2 with linespoints lw 2 pt 15 ps 1.1 dt 2 lc rgb '#D55E00' title "swa W=32" noenhanced, \
     "recall_accuracy_vs_d_model_L64_K4.dat" index 12 using 1:2 with linespoints lw 2 pt 7 ps 1.1 dt 2 lc rgb '#009E73' title "swa W=8" noenhanced
set output
set terminal svg size 1000,600 dynamic enhanced font 'DejaVu Sans,11'
set output "recall_accuracy_vs_d_model_L64_K4.svg"
replot
set output
set terminal pdfcairo size 6.5in,3.9in enhanced font 'DejaVu Sans,9'
set output "recall_accuracy_vs_d_model_L64_K4.pdf"
replot
set output
